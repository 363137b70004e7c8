"""``taiqu demo`` / ``make demo``: the whole stack on one machine, no root, no system service.

A simulated fleet (several transformer areas, DL/T 645 and Modbus meters, an area total meter
each, a bypass and a cover-open scenario) on an accelerated clock, one gateway per area, an MQTT
broker (mosquitto when installed, otherwise an embedded Python broker) and the head-end on
SQLite.  Every part runs as its own process through the ``taiqu`` command, exactly as deployed,
supervised like systemd units (``supervise``: a process that fails is restarted and logged);
the demo writes their configuration files and talks to them only through the ``taiqu`` CLI and
HTTP (it imports none of gateway/headend/simulators):

1. broker; 2. ``taiqu sim serve`` (writes each area's gateway.toml); 3. the head-end
(``migrate``, ``create-user`` for the admin, ``serve`` on the same clock setting); 4. the fleet's
archive — gateways, areas, meters with each area's total meter, read from the simulators'
control interface — imported through the head-end's API in force from the start of the
back-filled history, plus an operator and a supervisor; 5. prepaid accounts, tariffs and a local
reminder sink (``prepay``); 6. one ``taiqu gateway run`` per area, which receives its archive
from the head-end.  Commands and archive pushes are signed: the head-end's key is created with
``keys-init --valid-from`` the start of the back-filled history (archive versions from then are
signed too) and its trust file (``keys-export``) is installed in every gateway's
``[signatures]``, which requires signatures.  ``--for SECONDS`` stops everything
cleanly (exit 0).

Modules: ``run`` (the command), ``fleet`` (clock, fleet file, broker, head-end config),
``client`` (API and control clients, archive import), ``prepay``, ``supervise``.
"""

from taiqu.demo.run import app

__all__ = ["app"]
