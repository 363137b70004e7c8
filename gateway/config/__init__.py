"""The gateway's configuration (``gateway.toml``): models, loading, cross-checks, secrets.

``models`` declares the file as pydantic models; ``load`` reads it (``ConfigError`` naming the
file, the key and the fix); ``checks`` holds the cross-field checks (also run on a pushed
archive); ``secrets`` reads the credentials and key files it names.
"""

from gateway.config.load import ConfigError, config_hash, load_config, parse_config
from gateway.config.models import (
    MAX_BACKFILL_DAYS,
    STANDARD_BAUDS,
    BusConfig,
    ClockTrustConfig,
    CommandsConfig,
    GatewayConfig,
    HealthConfig,
    MeterConfig,
    ScheduleConfig,
    TimeSyncConfig,
)
from gateway.uplink.settings import PASSWORD_ENV

__all__ = [
    "MAX_BACKFILL_DAYS",
    "PASSWORD_ENV",
    "STANDARD_BAUDS",
    "BusConfig",
    "ClockTrustConfig",
    "CommandsConfig",
    "ConfigError",
    "GatewayConfig",
    "HealthConfig",
    "MeterConfig",
    "ScheduleConfig",
    "TimeSyncConfig",
    "config_hash",
    "load_config",
    "parse_config",
]
