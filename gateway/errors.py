"""The gateway's exception tree.

::

    GatewayError                 base of everything the gateway raises on purpose
    ├── StoreError               the local SQLite store cannot do what was asked
    │   ├── StoreCorruptError    the database file is not a usable Taiqu store
    │   └── StoreClosedError     the store was used after ``close()``
    ├── UplinkError              the MQTT uplink is misconfigured or misused
    └── LinkError                a meter bus link (serial port, pty, TCP) failed

Bad data from the head-end (an undecodable payload, an ``Ack`` for another epoch) is not an
exception for the caller: the uplink logs it once, counts it and carries on.  Configuration
problems are ``gateway.config.ConfigError`` (owned by the configuration module).
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class StoreError(GatewayError):
    """The local store cannot do what was asked."""


class StoreCorruptError(StoreError):
    """The database file exists but is not a usable Taiqu store (the message says why)."""


class StoreClosedError(StoreError):
    """The store was used after ``close()``."""


class UplinkError(GatewayError):
    """The MQTT uplink is misconfigured or used wrongly (e.g. started twice)."""


class LinkError(GatewayError):
    """A meter bus link failed (``SerialException``/``OSError`` translated at the edge)."""
