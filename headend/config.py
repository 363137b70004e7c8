"""The head-end's configuration file (``headend.toml``), loaded into pydantic models.

Sections: ``[database]`` (one SQLAlchemy URL: ``sqlite:///path.db`` is the embedded default,
``postgresql+psycopg://user@host/db`` selects PostgreSQL), ``[mqtt]`` (the broker the ingest
subscribes to; its ``client_id`` is unique: one ingest per id), ``[ingest]`` (grouping and
re-send timing), ``[api]`` (listen address), ``[auth]`` (token signing; used by headend.auth).
Secrets come from the environment (``TAIQU_HEADEND_DB_PASSWORD``, ``TAIQU_HEADEND_MQTT_PASSWORD``,
``TAIQU_HEADEND_SECRET``) or from files with owner-only permissions, never from the TOML.
A bad file raises ``ConfigError`` whose lines name the file, the key and the fix; every section
(also those other packages read from ``Settings.extra``, listed in ``SECTIONS``) is checked when
the file is loaded and again by ``create_app``, so ``serve`` exits 2 before it starts.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from headend.db.errors import ConfigError, HeadendError
from protocols.uplink.topics import GATEWAY_ID
from taiqu.clock import Clock, make_clock

__all__ = [
    "ApiSettings",
    "AuthSettings",
    "ConfigError",
    "DatabaseSettings",
    "IngestSettings",
    "MqttSettings",
    "Settings",
    "ThrottleSettings",
    "load_settings",
    "read_secret",
]

DB_PASSWORD_ENV = "TAIQU_HEADEND_DB_PASSWORD"
MQTT_PASSWORD_ENV = "TAIQU_HEADEND_MQTT_PASSWORD"
SECRET_ENV = "TAIQU_HEADEND_SECRET"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Model):
    """``[database]``: where everything is stored."""

    url: str = "sqlite:///headend.db"
    password_file: Path | None = None
    echo: bool = False
    # SQLite only: FULL survives power loss after an ack; NORMAL survives a process crash.
    sqlite_synchronous: str = Field(default="FULL", pattern="^(FULL|NORMAL)$")
    pool_size: int = Field(default=5, ge=1, le=100)

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ValueError(f"{url!r} is not a database URL") from None
        if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError("use sqlite:///path.db or postgresql+psycopg://user@host/db")
        if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
            raise ValueError("PostgreSQL URLs must name the psycopg driver: postgresql+psycopg://")
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def resolved_url(self) -> str:
        """The URL with the password filled in from the environment or the password file."""
        parsed = make_url(self.url)
        password = os.environ.get(DB_PASSWORD_ENV)
        if password is None and self.password_file is not None:
            password = read_secret(self.password_file, "database.password_file")
        if password is not None and not self.is_sqlite:
            parsed = parsed.set(password=password)
        return parsed.render_as_string(hide_password=False)


class MqttSettings(_Model):
    """``[mqtt]``: the broker the ingest subscribes to and publishes acks through."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = "taiqu-headend"
    username: str | None = None
    password_file: Path | None = None
    keepalive: int = Field(default=30, ge=5, le=3600)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Optional shared subscription group (``$share/<group>/…``) for several ingest processes.
    shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not GATEWAY_ID.match(value):
            raise ValueError("use 1-64 letters, digits, '_' or '-'")
        return value

    def password(self) -> str | None:
        """The broker password from the environment or the password file."""
        if (env := os.environ.get(MQTT_PASSWORD_ENV)) is not None:
            return env
        if self.password_file is not None:
            return read_secret(self.password_file, "mqtt.password_file")
        return None


class IngestSettings(_Model):
    """``[ingest]``: how messages are grouped into transactions and gaps chased."""

    enabled: bool = True  # run the ingest inside ``serve``
    max_group: int = Field(default=100, ge=1, le=10_000)  # messages per transaction
    resend_after: float = Field(default=10.0, gt=0, le=3600)  # seconds before re-asking a hole
    max_resend_ranges: int = Field(default=8, ge=1, le=1000)
    outbox_interval: float = Field(default=0.5, gt=0, le=60)
    # Signed uplink (headend.ingest.keys): a gateway with a registered key must always sign.
    # true: a gateway WITHOUT a registered key is refused too (production: every gateway is
    # enrolled).  false (default, for test benches and upgrades): its messages are accepted
    # unverified, with a warning at start.
    require_signatures: bool = False


class ApiSettings(_Model):
    """``[api]``: where the HTTP API listens."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    page_max: int = Field(default=10_000, ge=10, le=1_000_000)
    # Request bodies (checked before parsing and authentication, headend.api.limits): every
    # endpoint, and the bulk imports (the meter CSV).
    max_body_bytes: int = Field(default=1024 * 1024, ge=4096, le=64 * 1024 * 1024)
    max_import_bytes: int = Field(default=20 * 1024 * 1024, ge=4096, le=1024 * 1024 * 1024)


class ThrottleSettings(_Model):
    """``[auth.throttle]``: log-in back-off and lockout (headend.auth.throttle explains)."""

    free_failures: int = Field(default=5, ge=1, le=1000)
    lockout_failures: int = Field(default=10, ge=2, le=10_000)
    address_free_failures: int = Field(default=20, ge=1, le=100_000)
    address_lockout_failures: int = Field(default=100, ge=2, le=1_000_000)
    backoff_seconds: float = Field(default=1.0, gt=0, le=3600)
    max_backoff_seconds: float = Field(default=300.0, gt=0, le=86400)
    lockout_minutes: float = Field(default=15.0, gt=0, le=1440)
    memory_hours: float = Field(default=24.0, gt=0, le=24 * 90)

    @model_validator(mode="after")
    def _ordered(self) -> ThrottleSettings:
        if self.lockout_failures <= self.free_failures:
            raise ValueError("lockout_failures must be above free_failures")
        if self.address_lockout_failures <= self.address_free_failures:
            raise ValueError("address_lockout_failures must be above address_free_failures")
        return self

    def limits(self, scope: str) -> tuple[int, int]:
        """(free failures, lockout failures) for ``scope``."""
        if scope == "user":
            return self.free_failures, self.lockout_failures
        return self.address_free_failures, self.address_lockout_failures


class AuthSettings(_Model):
    """``[auth]``: bearer-token signing and log-in throttling (read by headend.auth)."""

    secret_file: Path | None = None
    token_minutes: int = Field(default=60, ge=1, le=24 * 60)
    issuer: str = "taiqu-headend"
    throttle: ThrottleSettings = ThrottleSettings()

    def secret(self) -> str | None:
        """The signing secret from the environment or the secret file."""
        if (env := os.environ.get(SECRET_ENV)) is not None:
            return env
        if self.secret_file is not None:
            return read_secret(self.secret_file, "auth.secret_file")
        return None


class Settings(_Model):
    """The whole file."""

    database: DatabaseSettings = DatabaseSettings()
    mqtt: MqttSettings = MqttSettings()
    ingest: IngestSettings = IngestSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    # Free-form sections read by other parts of the head-end (e.g. ``[guards]``).
    extra: dict[str, Any] = Field(default_factory=dict)
    source: Path | None = None


def clock_of(settings: Settings) -> Clock:
    """The clock of headend.toml's top-level ``clock`` (``ConfigError`` naming the key)."""
    setting = settings.extra.get("clock", "real")
    try:
        return make_clock(setting)
    except (ValueError, TypeError) as exc:
        where = settings.source or "headend.toml"
        raise ConfigError(
            f"{where}: clock: {exc}; use clock = {{ start = 2026-01-01T00:00:00+08:00, "
            "factor = 60 }} (or leave it out for the wall clock)"
        ) from None


OWN_SECTIONS = ("database", "mqtt", "ingest", "api", "auth")
# The sections other parts of the head-end read from ``Settings.extra``, each with the parser
# that validates it ("module:function", called with (extra, source)); ``check_sections`` runs
# them all at start, so a bad value anywhere stops the head-end before it serves anything.  A
# new section must be added here: an unknown section is a configuration error (a typo such as
# ``[gaurds]`` would otherwise silently leave the defaults in force).
SECTIONS: dict[str, str] = {
    "guards": "headend.commands.settings:ops_settings",
    "commands": "headend.commands.settings:ops_settings",
    "prepay": "headend.prepay.settings:prepay_settings",
    "scale": "headend.scale.job:scale_settings",
    "analytics": "headend.analytics.settings:analytics_settings",
    "security": "headend.security.settings:SecuritySettings.from_extra",
    "esam": "headend.esam.settings:EsamSettings.from_extra",
}


def read_secret(path: Path, key: str) -> str:
    """Read a secret file that only its owner may read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path} ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{key}: {path} must be readable by its owner only (chmod 600 {path})")
    return path.read_text().strip()


def check_sections(settings: Settings) -> None:
    """Validate every section of ``settings.extra`` and the clock; ``ConfigError`` listing every
    problem found (file, key, fix), not just the first."""
    import importlib

    where = settings.source or "headend.toml"
    problems: list[str] = []
    unknown = sorted(k for k in settings.extra if k not in SECTIONS and k != "clock")
    if unknown:
        problems.append(
            f"{where}: unknown sections {unknown}; known: {sorted([*OWN_SECTIONS, *SECTIONS])}"
        )
    parsers = dict.fromkeys(SECTIONS.values())  # one call per parser, in a stable order
    for target in parsers:
        module, _, name = target.partition(":")
        parse: Any = importlib.import_module(module)
        for part in name.split("."):
            parse = getattr(parse, part)
        try:
            parse(settings.extra, settings.source or "headend.toml")
        except HeadendError as exc:
            problems.extend(line for line in str(exc).splitlines() if line not in problems)
    try:
        clock_of(settings)
    except ConfigError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))


def load_settings(path: Path | str | None) -> Settings:
    """Load ``headend.toml`` (or the defaults when ``path`` is None), every section checked."""
    if path is None:
        return Settings()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    own = {k: v for k, v in raw.items() if k in OWN_SECTIONS}
    extra = {k: v for k, v in raw.items() if k not in OWN_SECTIONS}
    # Top-level scalars: only ``clock = "real"`` (the shared clock; a table form is a section).
    scalars = {k for k, v in extra.items() if not isinstance(v, dict) and k != "clock"}
    if scalars:
        bad = sorted(scalars)
        raise ConfigError(f"{path}: unknown top-level keys {bad}; settings go in [sections]")
    try:
        settings = Settings(**own, extra=extra, source=path)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            lines.append(f"{path}: {key}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    check_sections(settings)
    return settings
