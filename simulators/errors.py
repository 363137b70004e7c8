"""The exception tree of ``simulators`` (see the package docstring)."""

from __future__ import annotations


class SimError(Exception):
    """Base of every error the simulators raise on bad input."""


class SimConfigError(SimError):
    """A fleet file or CLI option that cannot describe a fleet (names the key and the fix)."""


class ControlError(SimError):
    """A control request naming an unknown meter, bus or area, or carrying a bad value."""


class ControlUnavailable(ControlError):
    """The control endpoint could not be reached."""


class EndpointError(SimError):
    """An endpoint (a bus's TCP listener, the control interface) could not be opened."""
