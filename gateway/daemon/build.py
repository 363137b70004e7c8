"""Building the daemon's parts from the configuration: the uplink, the command executor.

Functions of the running ``Gateway`` (``gateway.daemon.app``), kept apart so the daemon's own
module is its life cycle and schedules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from gateway.commands import CommandExecutor
from gateway.config import ConfigError
from gateway.config.secrets import resolve_secrets, uplink_sealer
from gateway.daemon.health import software_version
from gateway.signature import TrustFileError, command_check
from protocols.uplink import Command

if TYPE_CHECKING:
    from gateway.daemon.app import Gateway


def make_uplink(gw: Gateway) -> Any:
    """The MQTT uplink with the broker credentials resolved from the secrets."""
    if gw.uplink_factory is not None:
        factory = gw.uplink_factory
    else:
        from gateway.uplink import Uplink

        factory = Uplink
    secrets = resolve_secrets(gw.cfg, gw.config_path)
    broker = gw.cfg.broker.model_copy(
        update={
            "username": secrets.username,
            "password": None if secrets.password is None else SecretStr(secrets.password),
        }
    )
    return factory(
        gw.cfg.gateway_id,
        broker,
        gw.store,
        gw.clock,
        software_version=software_version(),
        config_hash=gw.config_hash,
        archive_version_fn=lambda: gw.archive_version,
        clock_synced_fn=gw.clocktrust.synced,
        on_command=gw._spawn_command,
        on_archive=gw._on_archive,
        sealer=uplink_sealer(gw.cfg, gw.config_path),
    )


def make_verifier(gw: Gateway) -> Callable[[Command], str | None]:
    """``[signatures]`` as the executor's check (``gateway.signature.command_check``)."""
    settings = gw.cfg.signatures.model_copy(update={"required": gw.cfg.signatures_required})
    try:
        return command_check(settings, gw.store, gw.clock, gw.clocktrust.headend_time)
    except TrustFileError as exc:
        raise ConfigError([f"{gw.config_path}: signatures.trust_file: {exc}"]) from None


def make_executor(gw: Gateway) -> CommandExecutor:
    assert gw.poller is not None and gw.ops is not None
    poller, cfg = gw.poller, gw.cfg
    return CommandExecutor(
        cfg.gateway_id,
        store=gw.store,
        publish=lambda result: gw.uplink.publish_result(result),
        transact=gw.ops.transact,
        meters=lambda: {i: mp.meter for i, mp in poller.meters.items()},
        clock=gw.clock,
        clock_synced=gw.clocktrust.synced,
        zone=cfg.zone,
        read=gw.ops.read,
        backfill=gw.ops.backfill,
        reconnect_window_s=cfg.commands.reconnect_window_s,
        baud_of=lambda b: cfg.bus(b).baud,
        verify_signature=make_verifier(gw),
        credentials=gw.meter_secrets,
        readback_deadline_s=cfg.commands.readback_deadline_s,
        readback_interval_s=cfg.commands.readback_interval_s,
        time_sync_policy=gw.ops.policy,
    )
