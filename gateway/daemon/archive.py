"""The archive (which meters to poll): the TOML's ``[[meters]]`` until the head-end pushes one.

A pushed archive is checked (for this gateway, signed by the head-end when signatures are
required, newer than the one applied, meters valid on the configured buses) and stored under the
state key ``archive`` so it survives a restart; the daemon (``gateway.daemon.app``) then applies
it without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gateway.config import GatewayConfig, MeterConfig
from gateway.config.budget import budget_warnings, line_warnings
from gateway.config.checks import check_meters
from protocols.uplink import ArchivePush
from protocols.uplink.signatures import ArchiveRefusal, PublicKey, check_archive

log = logging.getLogger("gateway")
ARCHIVE_KEY = "archive"


def initial_archive(cfg: GatewayConfig, store: Any) -> tuple[int, list[MeterConfig]]:
    """(version, meters) to start with: the stored pushed archive, else the TOML's (version 0)."""
    stored = store.get_state(ARCHIVE_KEY) if store is not None else None
    if isinstance(stored, dict) and stored.get("meters") is not None:
        try:
            meters = [MeterConfig.model_validate(m) for m in stored["meters"]]
            version = int(stored.get("version", 0))
            log.info("using the pushed archive version %d", version)
            return version, meters
        except Exception as exc:
            log.error("the stored archive is unusable (%s); using the TOML's meters", exc)
    return 0, list(cfg.meters)


def accept_push(
    cfg: GatewayConfig,
    push: ArchivePush,
    applied: int,
    keys: Mapping[str, PublicKey] | None = None,
) -> list[MeterConfig] | None:
    """The meters of ``push`` if it may replace archive version ``applied`` (else None, logged).

    The head-end signs archive pushes with its command keys: with signatures required (every
    deployment) an unsigned or badly signed push is refused before its version is looked at, so
    a forged push with a high version can neither apply nor block the real next one."""
    refusal = check_archive(
        push,
        gateway=cfg.gateway_id,
        keys=keys or {},
        running=applied or None,
        required=cfg.signatures_required,
    )
    if refusal is ArchiveRefusal.NOT_NEWER:
        log.info("archive version %d is not newer than %d", push.version, applied)
        return None
    if refusal is not None:
        log.error("archive version %d refused: %s", push.version, refusal.value)
        return None
    try:
        meters = [MeterConfig.from_archive(m) for m in push.meters]
    except Exception as exc:
        log.error("archive version %d refused: %s", push.version, exc)
        return None
    where = f"archive v{push.version}"
    problems = check_meters(cfg, meters, where=where)
    if problems:
        log.error("archive version %d refused: %s", push.version, "; ".join(problems))
        return None
    for warning in budget_warnings(cfg, meters, where=where) + line_warnings(
        cfg, meters, where=where
    ):
        log.warning("%s", warning)
    return meters


def store_archive(store: Any, version: int, meters: list[MeterConfig]) -> None:
    """Keep an accepted archive for the next start."""
    store.set_state(
        ARCHIVE_KEY, {"version": version, "meters": [m.model_dump(mode="json") for m in meters]}
    )
