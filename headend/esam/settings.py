"""``[esam]`` of headend.toml: which encryption service seals commands for ESAM meters.

::

    [esam]
    service = "software"                       # "software" (laboratory) or "hsm"
    key_file = "/var/lib/taiqu-headend/esam-lab.key"   # software: 16-byte master key, 0600
    production = true                          # refuse laboratory services (the default)
    hsm_adapter = "headend.esam.network:make_service"  # hsm: factory(options) -> service
    hsm = { url = "https://hsm.example:8443", token_file = "/etc/taiqu/hsm.token" }
    session_seconds = 300                      # the meters' authentication validity
    max_attempts = 3                           # authentications per command before it fails

No ``[esam]`` section: no encryption service, and commands to ESAM meters fail with a clear reason.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from headend.esam.service import EncryptionError, EncryptionService


class EsamConfigError(EncryptionError):
    """``[esam]`` is invalid, or asks for a laboratory service in production mode."""


class EsamSettings(BaseModel):
    """The ``[esam]`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: Literal["software", "hsm"] = "software"
    key_file: Path | None = None
    production: bool = True
    hsm_adapter: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    hsm: dict[str, Any] = Field(default_factory=dict)  # passed to the adapter's factory
    session_seconds: int = Field(default=300, ge=30, le=3600)
    max_attempts: int = Field(default=3, ge=1, le=10)

    @classmethod
    def from_extra(
        cls, extra: dict[str, Any], source: object = "headend.toml"
    ) -> EsamSettings | None:
        """``[esam]`` from ``Settings.extra`` (None without the section)."""
        if "esam" not in extra:
            return None
        try:
            return cls.model_validate(extra["esam"])
        except ValidationError as exc:
            lines = [
                f"{source}: esam.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors()
            ]
            raise EsamConfigError("\n".join(lines)) from None


def make_service(settings: EsamSettings) -> EncryptionService:
    """The configured service; ``EsamConfigError`` for a laboratory service in production."""
    if settings.service == "software":
        if settings.production:
            raise EsamConfigError(
                "esam.service = 'software' is a laboratory service and production mode is on: "
                "configure the utility's encryption machine (service = 'hsm') or, in a "
                "laboratory only, set esam.production = false"
            )
        if settings.key_file is None:
            raise EsamConfigError("esam.key_file is required for the software service")
        from headend.esam.software import SoftwareEncryptionService

        return SoftwareEncryptionService(settings.key_file)
    if settings.hsm_adapter is None:
        raise EsamConfigError("esam.hsm_adapter (module:factory) is required for service = 'hsm'")
    module, _, factory = settings.hsm_adapter.partition(":")
    try:
        service: EncryptionService = getattr(importlib.import_module(module), factory)(settings.hsm)
    except (ImportError, AttributeError, EncryptionError) as exc:
        raise EsamConfigError(f"esam.hsm_adapter {settings.hsm_adapter!r}: {exc}") from None
    if settings.production and not service.production_ready:
        raise EsamConfigError(f"esam: {service.name!r} is not production-ready")
    return service


def service_of(extra: dict[str, Any], source: object = "headend.toml") -> EncryptionService | None:
    """The service ``[esam]`` asks for, or None without the section (start-up calls this)."""
    settings = EsamSettings.from_extra(extra, source)
    return None if settings is None else make_service(settings)
