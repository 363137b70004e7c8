"""Wire formats only: bytes ⇄ typed values.  No I/O, no clock, no asyncio, no sqlite.

- ``protocols.quantities``: canonical quantity names and units, shared by every meter protocol,
  the MQTT payloads and the head-end.
- ``protocols.model``: the reading model (``Reading``, ``Event``) and meter-time helpers.
- ``protocols.uplink``: the versioned MQTT contract between gateway and head-end.
- ``protocols.dlt645`` / ``protocols.modbus``: meter codecs.

Exception tree (every error this package raises on bad input derives from ``ProtocolError``)::

    ProtocolError
    ├── RemoteProtocolError      the peer (a meter, a broker message) sent something malformed
    │   └── ContractError        an MQTT payload that breaks the uplink contract
    └── LocalProtocolError       the caller asked for something the protocol cannot express
"""

from protocols.errors import ContractError, LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = ["ContractError", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]
