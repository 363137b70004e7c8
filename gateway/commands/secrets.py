"""Meter passwords and operator codes, kept out of gateway.toml (``[commands] meter_secrets_file``).

A DL/T 645 control command (1CH) carries a password (level + 6 digits) and an operator code that
the meter checks and logs; whoever has them can switch the meter from the RS-485 bus.  They live in
their own TOML file, readable by the service user only (0600 or 0400: a file with any group or
world permission is refused), so the main config can be shared, diffed and shipped freely::

    [default]                  # every meter not listed below; unset keys: the DL/T 645 factory
    password = "02123456"      # values (02000000 / 00000000)
    operator = "0000A001"

    [meters."202611240001"]    # by meter id (a DL/T 645 meter's id is its address unless set)
    password = "04654321"      # level 04, password 654321; operator: [default]'s

- ``password``: ``LLPPPPPP``: level ``00``–``09`` (lower means more authority), then 6 digits.
- ``operator``: 8 hex digits (the operator code the meter records with the command).

Errors: ``MeterSecretsError`` (a ``GatewayError``) names the file, the key and the fix; the daemon
reports it as a configuration error.  Neither the credentials nor the error messages ever contain a
password or an operator code.
"""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import GatewayError
from protocols.dlt645.messages import DEFAULT_OPERATOR, DEFAULT_PASSWORD

PASSWORD_PATTERN = r"^0[0-9][0-9]{6}$"
OPERATOR_PATTERN = r"^[0-9A-Fa-f]{8}$"


class MeterSecretsError(GatewayError):
    """The meter secrets file cannot be used; ``str()`` names the file, the key and the fix."""


@dataclass(frozen=True)
class MeterCredentials:
    """The password and operator code for one meter (never shown in a repr)."""

    password: str = field(default=DEFAULT_PASSWORD, repr=False)
    operator: str = field(default=DEFAULT_OPERATOR, repr=False)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    password: str | None = Field(default=None, pattern=PASSWORD_PATTERN)
    operator: str | None = Field(default=None, pattern=OPERATOR_PATTERN)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: _Entry = _Entry()
    meters: dict[str, _Entry] = {}


_FIXES = {
    "password": 'level 00-09 then 6 digits, e.g. "02000000" (level 02, password 000000)',
    "operator": '8 hex digits, e.g. "0000A001"',
}


class MeterSecrets:
    """Credentials by meter id: its own entry, else the default (see the module docstring)."""

    def __init__(
        self,
        default: MeterCredentials | None = None,
        meters: Mapping[str, MeterCredentials] | None = None,
        source: str = "DL/T 645 factory defaults",
    ) -> None:
        self.default = default or MeterCredentials()
        self.meters = dict(meters or {})
        self.source = source

    def __call__(self, meter_id: str) -> MeterCredentials:
        return self.meters.get(meter_id, self.default)

    def __repr__(self) -> str:
        return f"MeterSecrets({len(self.meters)} meters + default, from {self.source})"


def _where(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 3 and parts[0] == "meters":
        return f'meters."{parts[1]}".' + ".".join(parts[2:])
    return ".".join(parts)


def parse_meter_secrets(doc: object, where: str) -> MeterSecrets:
    """Validate a parsed secrets document (messages never echo a secret)."""
    try:
        parsed = _File.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = str(err["loc"][-1]) if err["loc"] else ""
            if err["type"] == "extra_forbidden":
                fix = 'is not a known key: use [default] and [meters."<meter id>"] tables with '
                fix += "password and operator"
            elif err["type"] == "string_pattern_mismatch" and key in _FIXES:
                fix = f"is not valid: write {_FIXES[key]}"
            else:
                fix = "is not valid: " + err["msg"]
            problems.append(f"{where}: {_where(tuple(err['loc']))} {fix}")
        raise MeterSecretsError("; ".join(problems)) from None
    base = MeterCredentials(
        parsed.default.password or DEFAULT_PASSWORD,
        (parsed.default.operator or DEFAULT_OPERATOR).upper(),
    )
    meters = {
        meter_id: MeterCredentials(
            entry.password or base.password, (entry.operator or base.operator).upper()
        )
        for meter_id, entry in parsed.meters.items()
    }
    return MeterSecrets(base, meters, where)


def load_meter_secrets(path: Path) -> MeterSecrets:
    """Read the secrets file; refused unless only its owner may read it."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise MeterSecretsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise MeterSecretsError(f"{path}: not a regular file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MeterSecretsError(
            f"{path}: readable by others (mode {stat.S_IMODE(mode):04o}): meter passwords must be "
            f"readable by the service user only: chmod 600 {path}"
        )
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MeterSecretsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise MeterSecretsError(f"{path}: is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise MeterSecretsError(f"{path}: not valid TOML: {exc}") from None
    return parse_meter_secrets(doc, str(path))


__all__ = [
    "MeterCredentials",
    "MeterSecrets",
    "MeterSecretsError",
    "load_meter_secrets",
    "parse_meter_secrets",
]
