"""Wire formats only: bytes ⇄ typed values.  No I/O, no clock, no asyncio, no sqlite.

- ``protocols.quantities``: canonical quantity names and units, shared by every meter protocol,
  the MQTT payloads and the head-end.
- ``protocols.model``: the reading model (``Reading``, ``Event``) and meter-time helpers.
- ``protocols.uplink``: the versioned MQTT contract between gateway and head-end.
- ``protocols.dlt645`` / ``protocols.dlt698`` / ``protocols.modbus``: meter codecs.
- ``protocols.stream`` / ``protocols.connection``: the 68H … 16H frame hunt and the bus side of a
  sans-IO connection, shared by DL/T 645 and DL/T 698.45.
- ``protocols.archive``: the meter archive CSV columns (field search writes, the head-end reads).
- ``protocols.freeze_window``: when a meter's clock may be stepped (clear of its freezes on the
  hour), shared by the gateway's time sync and the head-end's clock sets.
- ``protocols.cli``: what the field tools (``taiqu dlt645|dlt698|modbus``) share.

Exception tree (every error this package raises on bad input derives from ``ProtocolError``)::

    ProtocolError
    ├── RemoteProtocolError      the peer (a meter, a broker message) sent something malformed
    │   └── ContractError        an MQTT payload that breaks the uplink contract
    └── LocalProtocolError       the caller asked for something the protocol cannot express
"""

from protocols.errors import ContractError, LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = ["ContractError", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]
