"""``taiqu demo`` / ``make demo``: the whole stack on one machine, no root, no system service.

A simulated fleet (several transformer areas, DL/T 645 and Modbus meters, an area total meter
each, long-standing bypasses and a cover-open scenario) on an accelerated clock, one gateway per
area, an MQTT broker (mosquitto as deployed when installed, otherwise an embedded Python broker)
and the head-end on SQLite.  Every part runs as its own process through the ``taiqu`` command,
exactly as deployed, supervised like systemd units (``supervise``: a process that fails is
restarted and logged); the demo writes their configuration files and talks to them only through
the ``taiqu`` CLI and HTTP (it imports none of gateway/headend/simulators):

1. the head-end's configuration and, side by side while the simulators start (``taiqu sim
serve``, which writes each area's gateway.toml), ``migrate`` and ``create-user`` for the admin,
and the operator's enrolment (``security``): ``keys-init --valid-from`` the start of the
back-filled history (archive versions from then are signed too), ``init-ca`` for the broker's
TLS certificate, ``enrol-headend`` and one ``enrol-gateway`` per gateway, whose bundle is merged
into its gateway.toml (broker identity, CA, the head-end's trust file: commands and archives
must be signed); 2. mosquitto from the shipped ``deploy/mosquitto`` config and ACL (no anonymous
access; without mosquitto an embedded, anonymous amqtt broker, not the deployed form); 3. the
head-end (``serve`` on the same clock setting); 4. the fleet's archive — gateways, areas, meters
with each area's total meter, read from the simulators' control interface — imported through the
head-end's API in force from the start of the back-filled history, plus an operator and a
supervisor; 5. prepaid accounts, tariffs and a local reminder sink (``prepay``); 6. one ``taiqu
gateway run`` per area, which receives its archive from the head-end.  ``--for SECONDS`` stops
everything cleanly (exit 0).

Modules: ``run`` (the command), ``fleet`` (clock, fleet file, head-end config), ``security``
(broker config, enrolment, bundles), ``client`` (API and control clients, archive import),
``prepay``, ``history`` (the back-filled week's analytics), ``supervise``.
"""

from taiqu.demo.run import app

__all__ = ["app"]
