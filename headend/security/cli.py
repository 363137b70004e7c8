"""``taiqu headend enrol-gateway | rekey-gateway | gateway-keys | revoke-gateway | keys-* | …``.

Paths default to ``[security]`` of the configuration file (``headend.security.settings``); every
option overrides its key.  ``register(app)`` mounts the commands on the ``taiqu headend`` app.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from headend.config import load_settings
from headend.db.errors import HeadendError
from headend.security.errors import EnrolmentError
from headend.security.settings import SecuritySettings

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="headend.toml (defaults apply without one)")
]
DirOpt = Annotated[Path | None, typer.Option(help="overrides the [security] key of that name")]


def _security(config: Path | None) -> SecuritySettings:
    try:
        settings = load_settings(config)
        return SecuritySettings.from_extra(settings.extra, settings.source or "defaults")
    except HeadendError as exc:
        typer.echo(f"taiqu headend: bad configuration\n{exc}", err=True)
        raise typer.Exit(2) from None


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


def _fail(command: str, exc: Exception) -> typer.Exit:
    typer.echo(f"taiqu headend {command}: {exc}", err=True)
    return typer.Exit(2)


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

    sec = _security(config)
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
        raise _fail("enrol-gateway", exc) from None
    finally:
        if engine is not None:
            engine.dispose()
    typer.echo(f"enrolled {gateway_id}: bundle in {result.bundle}")
    for path in result.files:
        typer.echo(f"  {path.name}")
    where = "registered with the head-end" if result.registered else "NOT registered (see --help)"
    typer.echo(f"uplink signing key {result.key_id}: {where}")
    typer.echo("reload the broker (systemctl reload mosquitto) to activate the credentials")


def enrol_headend(
    name: Annotated[str, typer.Argument(help="head-end broker username")] = "taiqu-headend",
    config: ConfigOpt = None,
    broker_dir: DirOpt = None,
    count: Annotated[
        int | None,
        typer.Option(help="enrol NAME-1 … NAME-COUNT: one identity per ingest process"),
    ] = None,
    password_file: Annotated[
        Path, typer.Option(help="where to write the password (0600); {name}: the identity")
    ] = Path("mqtt-password"),
    replace: Annotated[bool, typer.Option()] = False,
) -> None:
    """Create head-end broker identities (each reads every uplink, writes every downlink)."""
    from headend.security.enrol import BrokerFiles, headend_names
    from headend.security.enrol import enrol_headend as enrol
    from headend.security.keys import write_private

    sec = _security(config)
    target = broker_dir or sec.broker_dir
    template = str(password_file)
    if count is not None and "{name}" not in template:
        template = str(password_file.with_name(password_file.name + "-{name}"))
    try:
        names = headend_names(name, count)
        taken = [n for n in names if n in BrokerFiles(target).passwd.entries()]
        if taken and not replace:
            raise EnrolmentError(f"{', '.join(taken)} already enrolled: use --replace")
        files = {n: Path(template.replace("{name}", n)) for n in names}
        for identity in names:
            password = enrol(identity, broker_dir=target, replace=replace)
            write_private(files[identity], password.encode() + b"\n")
    except (HeadendError, OSError) as exc:
        raise _fail("enrol-headend", exc) from None
    for identity in names:
        typer.echo(f"head-end identity {identity}: password in {files[identity]}")
    typer.echo("in each process's headend.toml (with several, the same [mqtt] shared_group):")
    typer.echo('  [mqtt] client_id = username = "<identity>", password_file = "<its file>"')
    typer.echo("reload the broker (systemctl reload mosquitto) to activate the identities")


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

    sec = _security(config)
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
        raise _fail("revoke-gateway", exc) from None
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

    sec = _security(config)
    engine: Engine | None = None
    try:
        engine = _database(config)
        result = rekey(gateway_id, out_dir=bundle_dir or sec.bundle_dir, now=datetime.now(UTC),
                       engine=engine)  # fmt: skip
    except (HeadendError, OSError, SQLAlchemyError) as exc:
        raise _fail("rekey-gateway", exc) from None
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
        raise _fail("gateway-keys", exc) from None
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


def keys_init(
    config: ConfigOpt = None, keys_dir: DirOpt = None, valid_from: ValidFromOpt = None
) -> None:
    """Create the first command-signing key (signing from --valid-from, default now)."""
    from headend.security.keys import KeyStore

    store = KeyStore(keys_dir or _security(config).keys_dir)
    start = _instant(valid_from, "--valid-from")
    try:
        info = store.create(_now(config), start)
    except (HeadendError, OSError) as exc:
        raise _fail("keys-init", exc) from None
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

    store = KeyStore(keys_dir or _security(config).keys_dir)
    now = _now(config)
    activate = _instant(valid_from, "--valid-from") or now + timedelta(days=activate_in_days)
    try:
        info = store.rotate(now, activate, activate + timedelta(days=overlap_days))
    except (HeadendError, OSError) as exc:
        raise _fail("keys-rotate", exc) from None
    typer.echo(f"signing key {info.key_id} signs from {activate:%Y-%m-%d %H:%M}Z;")
    typer.echo("export the trust file to every gateway before then (taiqu headend keys-export)")


def keys_export(
    out: Annotated[Path, typer.Argument(help="trust file to write (headend-keys.json)")],
    config: ConfigOpt = None,
    keys_dir: DirOpt = None,
) -> None:
    """Write the gateways' trust file: public keys and cut-over dates."""
    from headend.security.keys import KeyStore

    store = KeyStore(keys_dir or _security(config).keys_dir)
    try:
        store.export_trust(out, _now(config))
    except (HeadendError, OSError) as exc:
        raise _fail("keys-export", exc) from None
    typer.echo(f"trust file written to {out}")


def init_ca(
    hosts: Annotated[list[str], typer.Argument(help="the broker's DNS names / IP addresses")],
    config: ConfigOpt = None,
    ca_dir: DirOpt = None,
    broker_dir: DirOpt = None,
) -> None:
    """Create the local CA and the broker's server certificate (ca.crt, server.crt/key)."""
    from headend.security.ca import LocalCA

    sec = _security(config)
    ca = LocalCA(ca_dir or sec.ca_dir)
    target = broker_dir or sec.broker_dir
    now = datetime.now(UTC)
    try:
        if not ca.exists():
            ca.create(now)
        ca.issue_server(hosts, now).write(target / "server.crt", target / "server.key")
        (target / "ca.crt").write_bytes(ca.cert_path.read_bytes())
    except (HeadendError, OSError) as exc:
        raise _fail("init-ca", exc) from None
    typer.echo(f"CA in {ca.directory}; broker certificate for {', '.join(hosts)} in {target}")


def esam_lab_key(
    path: Annotated[Path, typer.Argument(help="the key file to create (0600, never overwritten)")],
) -> None:
    """Create the laboratory ESAM master key (labs, tests, the demo: NOT FOR PRODUCTION)."""
    from headend.esam.software import create_key_file

    try:
        create_key_file(path)
    except OSError as exc:
        raise _fail("esam-lab-key", exc) from None
    typer.echo(
        f"laboratory ESAM master key written to {path} (0600): NOT FOR PRODUCTION; use it with "
        "[esam] service = 'software', production = false, and the simulator's ESAM meters"
    )


def register(target: typer.Typer) -> None:
    """Add the security sub-commands to ``target`` (the ``taiqu headend`` app)."""
    target.command("enrol-gateway")(enrol_gateway)
    target.command("enrol-headend")(enrol_headend)
    target.command("revoke-gateway")(revoke_gateway)
    target.command("gateway-keys")(gateway_keys)
    target.command("rekey-gateway")(rekey_gateway)
    target.command("keys-init")(keys_init)
    target.command("keys-rotate")(keys_rotate)
    target.command("keys-export")(keys_export)
    target.command("init-ca")(init_ca)
    target.command("esam-lab-key")(esam_lab_key)


app = typer.Typer(
    help="Head-end security: signing keys and broker enrolment.", no_args_is_help=True
)
register(app)
