"""``[commands]`` and ``[guards]`` of the head-end's TOML (carried in ``Settings.extra``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from headend.commands.clockset import ClockSetPolicy
from headend.db.errors import ConfigError
from headend.guards.settings import GuardSettings


class CommandSettings(BaseModel):
    """How long commands live and how the dispatcher runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    valid_for: int = Field(default=900, ge=30, le=7 * 86400)  # seconds, when a request omits it
    max_valid_for: int = Field(default=86400, ge=60, le=30 * 86400)
    max_meters: int = Field(default=5000, ge=1, le=1_000_000)  # per command
    result_grace: int = Field(default=300, ge=0, le=86400)  # wait for results past valid_until
    dispatch_interval: float = Field(default=1.0, gt=0, le=60)
    # wall seconds between passes while a secured step awaits its result (ESAM flows: each hop
    # would otherwise wait up to dispatch_interval); bounded by the steps' validity
    step_poll_interval: float = Field(default=0.1, gt=0, le=60)
    claim_timeout: int = Field(default=60, ge=5, le=3600)  # re-claim a dispatch stuck "sending"
    clock_set: ClockSetPolicy = ClockSetPolicy()  # secured clock sets of ESAM meters


@dataclass(frozen=True)
class FlowSettings:
    """Timing and bounds of the flow (``[esam]`` of headend.toml)."""

    session_seconds: int = 300  # the meters' authentication validity
    margin_seconds: int = 30  # seal only while at least this much of the session remains
    max_attempts: int = 3  # authentications per target
    step_seconds: int = 60  # valid_until of each step command
    control_minutes: int = 5  # the 1CH valid-until (meter local time) after sealing
    clock_tolerance: float = 10.0  # seconds a clock read back after a set may be off


def ops_settings(
    extra: dict[str, Any], source: object = None
) -> tuple[GuardSettings, CommandSettings]:
    """Parse ``[guards]`` and ``[commands]``; ``ConfigError`` naming the key and the fix."""
    where = f"{source}: " if source else ""
    try:
        guards = GuardSettings.model_validate(extra.get("guards", {}))
        cmds = CommandSettings.model_validate(extra.get("commands", {}))
    except ValidationError as exc:
        section = "guards" if exc.title == "GuardSettings" else "commands"
        lines = [
            f"{where}{section}.{'.'.join(str(p) for p in e['loc']) or '(section)'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ConfigError("\n".join(lines)) from None
    return guards, cmds
