"""``taiqu headend create-user | verify-audit``: the operations sub-commands.

``headend.cli`` mounts them with ``register(app)``; ``app`` here runs them on their own.
Exit codes: 0 done, 1 the audit chain is broken, 2 bad configuration or request.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from headend.config import Settings, clock_of, load_settings
from headend.db.errors import HeadendError

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="headend.toml (defaults apply without one)")
]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except HeadendError as exc:
        typer.echo(f"taiqu headend: bad configuration\n{exc}", err=True)
        raise typer.Exit(2) from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = typer.prompt("Password", hide_input=True)
    if typer.prompt("Repeat it", hide_input=True) != first:
        typer.echo("taiqu headend create-user: the passwords differ", err=True)
        raise typer.Exit(2)
    return str(first)


def create_user(
    name: Annotated[str, typer.Argument(help="the log-in name")],
    role: Annotated[str, typer.Option("--role", help="viewer|operator|supervisor|admin")],
    areas: Annotated[
        list[str] | None,
        typer.Option("--areas", help="limit the user to these areas (repeat or comma-separate)"),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Create a user (the password is prompted for, or read from stdin)."""
    from headend.auth import users
    from headend.db import make_engine, writing
    from headend.db.migrate import upgrade

    settings = _settings(config)
    scope = sorted({a.strip() for v in areas for a in v.split(",") if a.strip()}) if areas else None
    password = _password(password_stdin)
    engine = make_engine(settings.database)
    try:
        upgrade(engine)
        with writing(engine) as conn:
            record = users.create(
                conn,
                name,
                role,
                password,
                areas=scope,
                actor=f"cli:{getpass.getuser()}",
                now=clock_of(settings).now(),
            )
    except HeadendError as exc:
        typer.echo(f"taiqu headend create-user: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    where = ", ".join(sorted(record.areas)) if record.areas is not None else "every area"
    typer.echo(f"created {record.name} ({record.role}, {where})")


def verify_audit(config: ConfigOpt = None) -> None:
    """Recompute the audit chain; report the first broken row (exit 1) or the head hash."""
    from headend import audit
    from headend.db import make_engine, reading

    settings = _settings(config)
    engine = make_engine(settings.database)
    try:
        with reading(engine) as conn:
            result = audit.verify(conn)
    except HeadendError as exc:
        typer.echo(f"taiqu headend verify-audit: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    if not result.ok:
        typer.echo(
            f"audit chain BROKEN at row {result.broken_id}: {result.problem} "
            f"({result.rows} rows verified before it)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"audit chain ok: {result.rows} rows, head {result.head_id} {result.head_hash}")


def register(target: typer.Typer) -> None:
    """Add the operations sub-commands to ``target`` (the ``taiqu headend`` app)."""
    target.command("create-user")(create_user)
    target.command("verify-audit")(verify_audit)


app = typer.Typer(help="Head-end operations: users and the audit log.", no_args_is_help=True)
register(app)
