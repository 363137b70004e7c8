"""``taiqu headend enrol-gateway | rekey-gateway | revoke-gateway | gateway-keys``: a gateway's
broker credentials, installation bundle and uplink signing keys (registered in the database)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from headend.config import load_settings
from headend.db.errors import HeadendError
from headend.security.cli.options import ConfigOpt, DirOpt, fail, security_settings
from headend.security.errors import EnrolmentError


def _database(config: Path | None) -> Engine:
    """The head-end's database (``[database]`` of ``config``), migrated to hold ``gateway_keys``.

    Never creates one: a missing SQLite file or an unmigrated database is an ``EnrolmentError``
    naming the fix.
    """
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from headend.db import make_engine

    db = load_settings(config).database
    fix = (
        "run `taiqu headend migrate -c headend.toml` first and pass -c, or use --no-register-key "
        "(then the head-end cannot verify this gateway's signatures)"
    )
    if db.is_sqlite:
        name = make_url(db.url).database or ""
        if name not in ("", ":memory:") and not Path(name).exists():
            raise EnrolmentError(f"database {db.url} does not exist: {fix}")
    engine = make_engine(db)
    with engine.connect() as conn:
        if not inspect(conn).has_table("gateway_keys"):
            engine.dispose()
            raise EnrolmentError(f"database {db.url} has no gateway_keys table: {fix}")
    return engine


RegisterOpt = Annotated[
    bool,
    typer.Option(
        help="register the gateway's signing key with the head-end's database ([database] of -c)"
    ),
]


def enrol_gateway(
    gateway_id: Annotated[str, typer.Argument(help="the gateway id (its MQTT username)")],
    config: ConfigOpt = None,
    broker_dir: DirOpt = None,
    keys_dir: DirOpt = None,
    ca_dir: DirOpt = None,
    bundle_dir: DirOpt = None,
    client_cert: Annotated[bool, typer.Option(help="issue a client certificate")] = False,
    replace: Annotated[bool, typer.Option(help="issue new credentials for a known id")] = False,
    register_key: RegisterOpt = True,
) -> None:
    """Create a gateway's broker credentials, signing key and installation bundle.

    With --replace the gateway gets a new password and a new signing key; its old key is revoked
    at once (messages signed with it are refused from then on).
    """
    from headend.security.ca import LocalCA
    from headend.security.enrol import BrokerFiles, check_gateway_id
    from headend.security.enrol import enrol_gateway as enrol
    from headend.security.keys import KeyStore

    sec = security_settings(config)
    engine: Engine | None = None
    try:
        check_gateway_id(gateway_id, BrokerFiles(broker_dir or sec.broker_dir))
        engine = _database(config) if register_key else None
        result = enrol(
            gateway_id,
            broker_dir=broker_dir or sec.broker_dir,
            out_dir=bundle_dir or sec.bundle_dir,
            now=datetime.now(UTC),
            keys=KeyStore(keys_dir or sec.keys_dir),
            ca=LocalCA(ca_dir or sec.ca_dir),
            client_cert=client_cert,
            host=sec.broker_host,
            port=sec.broker_port,
            replace=replace,
            engine=engine,
        )
    except (HeadendError, OSError, SQLAlchemyError) as exc:
        raise fail("enrol-gateway", exc) from None
    finally:
        if engine is not None:
            engine.dispose()
    typer.echo(f"enrolled {gateway_id}: bundle in {result.bundle}")
    for path in result.files:
        typer.echo(f"  {path.name}")
    where = "registered with the head-end" if result.registered else "NOT registered (see --help)"
    typer.echo(f"uplink signing key {result.key_id}: {where}")
    typer.echo("reload the broker (systemctl reload mosquitto) to activate the credentials")


def revoke_gateway(
    gateway_id: str,
    config: ConfigOpt = None,
    broker_dir: DirOpt = None,
    register_key: Annotated[
        bool, typer.Option(help="revoke its signing keys in the head-end's database too")
    ] = True,
) -> None:
    """Remove a gateway's broker password and revoke its signing keys (then reload the broker)."""
    from headend.db.engine import writing
    from headend.security.enrol import revoke_gateway as revoke
    from headend.security.gateway_keys import revoke as revoke_keys

    sec = security_settings(config)
    keys = 0
    try:
        removed = revoke(gateway_id, broker_dir=broker_dir or sec.broker_dir)
        if register_key:
            engine = _database(config)
            try:
                with writing(engine) as conn:
                    keys = revoke_keys(conn, gateway_id, datetime.now(UTC))
            finally:
                engine.dispose()
    except (HeadendError, OSError, SQLAlchemyError) as exc:
        raise fail("revoke-gateway", exc) from None
    typer.echo(f"{gateway_id}: {'revoked' if removed else 'had no broker credentials'}")
    if register_key:
        typer.echo(f"{gateway_id}: {keys} signing key(s) revoked")


def rekey_gateway(
    gateway_id: Annotated[str, typer.Argument(help="the gateway id")],
    config: ConfigOpt = None,
    bundle_dir: DirOpt = None,
) -> None:
    """Issue a gateway a new uplink signing key only (its broker password stays); the old key is
    refused from now on: install the new gateway-key.pem and restart the gateway."""
    from headend.security.enrol import rekey_gateway as rekey

    sec = security_settings(config)
    engine: Engine | None = None
    try:
        engine = _database(config)
        result = rekey(gateway_id, out_dir=bundle_dir or sec.bundle_dir, now=datetime.now(UTC),
                       engine=engine)  # fmt: skip
    except (HeadendError, OSError, SQLAlchemyError) as exc:
        raise fail("rekey-gateway", exc) from None
    finally:
        if engine is not None:
            engine.dispose()
    typer.echo(f"{gateway_id}: uplink signing key {result.key_id} registered, the old one revoked")
    typer.echo(f"  install {result.files[0]} as signatures.signing_key_file (0600), then restart")


def gateway_keys(config: ConfigOpt = None) -> None:
    """List the gateways' uplink signing keys, and the gateways heard from without one."""
    from headend.security.gateway_keys import overview, revoked_gateways

    try:
        engine = _database(config)
        try:
            with engine.connect() as conn:
                rows = overview(conn)
                revoked = revoked_gateways(conn)
        finally:
            engine.dispose()
    except (HeadendError, OSError, SQLAlchemyError) as exc:
        raise fail("gateway-keys", exc) from None
    missing = 0
    for gateway, key_id, registered in rows:
        if key_id is None and gateway in revoked:
            missing += 1
            typer.echo(f"{gateway}  REVOKED  (everything on its topics is refused)")
        elif key_id is None:
            missing += 1
            typer.echo(
                f"{gateway}  NO KEY  (accepted only while [ingest] require_signatures = false)"
            )
        else:
            typer.echo(f"{gateway}  {key_id}  registered {registered:%Y-%m-%d %H:%M}Z")
    typer.echo(f"{len(rows) - missing} gateway(s) with a key, {missing} without")
