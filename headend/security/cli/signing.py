"""``taiqu headend keys-init | keys-rotate | keys-export``: the head-end's command-signing keys
and the trust file the gateways verify commands with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from headend.config import load_settings
from headend.db.errors import HeadendError
from headend.security.cli.options import ConfigOpt, DirOpt, fail, security_settings


def _now(config: Path | None) -> datetime:
    """Now on the head-end's clock (headend.toml's ``clock``), which stamps the signed commands."""
    from headend.config import clock_of

    try:
        return clock_of(load_settings(config)).now()
    except HeadendError as exc:
        typer.echo(f"taiqu headend: bad configuration\n{exc}", err=True)
        raise typer.Exit(2) from None


def _instant(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time with a UTC offset (``typer.BadParameter`` otherwise)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: use ISO 8601, e.g. 2026-03-10T09:30:00+08:00", param_hint=option
        ) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{value!r} needs a UTC offset (…+08:00 or …Z)", param_hint=option)
    return parsed.astimezone(UTC)


ValidFromOpt = Annotated[
    str | None,
    typer.Option(
        "--valid-from",
        help="when the key starts signing (ISO 8601 with offset; default: head-end clock now)",
    ),
]


def keys_init(
    config: ConfigOpt = None, keys_dir: DirOpt = None, valid_from: ValidFromOpt = None
) -> None:
    """Create the first command-signing key (signing from --valid-from, default now)."""
    from headend.security.keys import KeyStore

    store = KeyStore(keys_dir or security_settings(config).keys_dir)
    start = _instant(valid_from, "--valid-from")
    try:
        info = store.create(_now(config), start)
    except (HeadendError, OSError) as exc:
        raise fail("keys-init", exc) from None
    typer.echo(
        f"signing key {info.key_id} created in {store.directory}, "
        f"signing from {info.not_before:%Y-%m-%d %H:%M:%S}Z"
    )


def keys_rotate(
    config: ConfigOpt = None,
    keys_dir: DirOpt = None,
    activate_in_days: Annotated[float, typer.Option(help="days until the new key signs")] = 7,
    overlap_days: Annotated[float, typer.Option(help="days the old key stays accepted")] = 14,
    valid_from: Annotated[
        str | None,
        typer.Option("--valid-from", help="when the new key signs (instead of --activate-in-days)"),
    ] = None,
) -> None:
    """Add a signing key: it signs after ``activate_in_days``; older keys stop after the overlap."""
    from headend.security.keys import KeyStore

    store = KeyStore(keys_dir or security_settings(config).keys_dir)
    now = _now(config)
    activate = _instant(valid_from, "--valid-from") or now + timedelta(days=activate_in_days)
    try:
        info = store.rotate(now, activate, activate + timedelta(days=overlap_days))
    except (HeadendError, OSError) as exc:
        raise fail("keys-rotate", exc) from None
    typer.echo(f"signing key {info.key_id} signs from {activate:%Y-%m-%d %H:%M}Z;")
    typer.echo("export the trust file to every gateway before then (taiqu headend keys-export)")


def keys_export(
    out: Annotated[Path, typer.Argument(help="trust file to write (headend-keys.json)")],
    config: ConfigOpt = None,
    keys_dir: DirOpt = None,
) -> None:
    """Write the gateways' trust file: public keys and cut-over dates."""
    from headend.security.keys import KeyStore

    store = KeyStore(keys_dir or security_settings(config).keys_dir)
    try:
        store.export_trust(out, _now(config))
    except (HeadendError, OSError) as exc:
        raise fail("keys-export", exc) from None
    typer.echo(f"trust file written to {out}")
