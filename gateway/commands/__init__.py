"""Head-end commands: validation, lifecycle, bus plans and read-backs (bus I/O is injected).

Lifecycle; every step is a ``CommandResult`` published on ``up/result`` and logged in the store::

    received ─┬─► refused (rule)   wrong_gateway | duplicate | signature:… | clock_unsynced |
              │                    unknown_meters | unsupported_action
              ├─► expired          valid_until passed on receipt
              └─► executing ─► per meter: executed | failed (the meter's reason) | armed |
                               │             refused (unknown_meter, unsupported_protocol, …) |
                               │             expired (its turn came after valid_until)
                               └─► final summary (meter = None): executed | failed | expired
    armed ──(relay seen closed: observe_relay)──────────► executed (closed by the customer)
          ──(a later relay command for that meter)──────► failed (superseded)

Idempotency: "received" is logged under the command id before anything else; an id already in the
log is refused as ``duplicate`` and never executed again, across restarts (the log is the SQLite
store).  Relay commands are refused while the gateway clock is unsynced (rule ``clock_unsynced``):
the meter checks valid-until against its own clock, so the gateway must know what time it is.

Relay, alarm and keep-power commands: ``RemoteControl`` (1CH) then ``ReadData`` of status word 3
(04000503) as read-back: bit 4 relay (0 closed, 1 open), bit 7 alarm, bit 12 keep-power.  Trip →
open; direct close → closed; close allowed → still open means ``armed`` (awaiting the customer's
button), closed means executed.  Close commands to several meters are spread over
``reconnect_window_s`` by a seeded random delay per meter (an area must not come back at once).

Time sync on command: the meters' clocks are read, the policy of ``gateway.clock.sync`` applies
(drift limit, freeze windows; the once-a-day limit does not bind an operator's explicit request),
one broadcast per bus.  Reads, back-fill and archive updates are delegated to injected handlers.

Signature: ``verify_signature(command)`` returns ``None`` to accept or the reason to refuse; the
daemon passes ``gateway.signature``'s Ed25519 check (the executor's own default accepts all).

Meter credentials: ``credentials(meter_id)`` gives the password and operator code of a control
command (``gateway.commands.secrets``: ``[commands] meter_secrets_file``); without it every meter
gets the ``password``/``operator`` arguments (the DL/T 645 factory values by default).
"""

from gateway.commands.executor import CommandExecutor
from gateway.commands.secrets import (
    MeterCredentials,
    MeterSecrets,
    MeterSecretsError,
    load_meter_secrets,
)
from gateway.commands.types import (
    ARMED_KEY,
    CONTROL,
    DEFAULT_RECONNECT_WINDOW_S,
    RELAY_ACTIONS,
    TIME_SYNC_KEY,
    ArchiveHandler,
    CommandStore,
    Handler,
    MeterFailure,
    MeterLike,
    Outcome,
    Publish,
    SignatureCheck,
    Transact,
    accept_unsigned,
)

__all__ = [
    "ARMED_KEY",
    "CONTROL",
    "DEFAULT_RECONNECT_WINDOW_S",
    "RELAY_ACTIONS",
    "TIME_SYNC_KEY",
    "ArchiveHandler",
    "CommandExecutor",
    "CommandStore",
    "Handler",
    "MeterCredentials",
    "MeterFailure",
    "MeterLike",
    "MeterSecrets",
    "MeterSecretsError",
    "Outcome",
    "Publish",
    "SignatureCheck",
    "Transact",
    "accept_unsigned",
    "load_meter_secrets",
]
