"""The exception tree of ``protocols`` (see the package docstring)."""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by the codecs and the contract on bad input."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something malformed (garbage on the bus, a bad MQTT payload)."""


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol cannot express (a bug on our side)."""


class ContractError(RemoteProtocolError):
    """An MQTT payload that does not follow the uplink contract."""
