"""Loading ``gateway.toml``: TOML → pydantic models → cross-field checks, or ``ConfigError``.

Every failure raises ``ConfigError`` whose message names the file, the key and the fix, one line
per problem; the daemon prints it and exits with status 2.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config.checks import cross_checks
from gateway.config.models import GatewayConfig
from gateway.errors import GatewayError


class ConfigError(GatewayError):
    """The configuration cannot be used; ``str()`` is the message for the operator."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _loc(loc: Iterable[Any], doc: dict[str, Any]) -> str:
    """``meters[3].address`` from a pydantic error location."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"function-after", "function-before"} or str(part).startswith("function"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format_validation(path: Path, exc: ValidationError, doc: dict[str, Any]) -> list[str]:
    problems = []
    errors = exc.errors()
    deeper = {tuple(e["loc"][:1]) for e in errors if len(e["loc"]) > 1}
    for err in errors:
        if err["type"] == "too_short" and tuple(err["loc"]) in deeper:
            continue  # "buses: at least 1 item" only because an item was invalid
        loc = [p for p in err["loc"] if not str(p).startswith(("function-", "literal["))]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required: add it"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known key: remove it or check its spelling (see examples/gateway.toml)"
        problems.append(f"{path}: {_loc(loc, doc)}: {msg}")
    return problems


def parse_config(doc: dict[str, Any], path: Path) -> GatewayConfig:
    """Validate a parsed TOML document; ``ConfigError`` lists every problem."""
    try:
        cfg = GatewayConfig.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(_format_validation(path, exc, doc)) from None
    problems = cross_checks(path, cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate ``gateway.toml``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file ({exc.strerror or exc})"]) from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return parse_config(doc, path)


def config_hash(path: str | Path) -> str:
    """A short hash of the file as read (reported in the status message)."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
