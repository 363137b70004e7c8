"""``taiqu headend enrol-headend | init-ca``: the head-end's own broker identities and the
broker's TLS certificate from the local CA."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from headend.db.errors import HeadendError
from headend.security.cli.options import ConfigOpt, DirOpt, fail, security_settings
from headend.security.errors import EnrolmentError


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

    sec = security_settings(config)
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
        raise fail("enrol-headend", exc) from None
    for identity in names:
        typer.echo(f"head-end identity {identity}: password in {files[identity]}")
    typer.echo("in each process's headend.toml (with several, the same [mqtt] shared_group):")
    typer.echo('  [mqtt] client_id = username = "<identity>", password_file = "<its file>"')
    typer.echo("reload the broker (systemctl reload mosquitto) to activate the identities")


def init_ca(
    hosts: Annotated[list[str], typer.Argument(help="the broker's DNS names / IP addresses")],
    config: ConfigOpt = None,
    ca_dir: DirOpt = None,
    broker_dir: DirOpt = None,
) -> None:
    """Create the local CA and the broker's server certificate (ca.crt, server.crt/key)."""
    from headend.security.ca import LocalCA

    sec = security_settings(config)
    ca = LocalCA(ca_dir or sec.ca_dir)
    target = broker_dir or sec.broker_dir
    now = datetime.now(UTC)
    try:
        if not ca.exists():
            ca.create(now)
        ca.issue_server(hosts, now).write(target / "server.crt", target / "server.key")
        (target / "ca.crt").write_bytes(ca.cert_path.read_bytes())
    except (HeadendError, OSError) as exc:
        raise fail("init-ca", exc) from None
    typer.echo(f"CA in {ca.directory}; broker certificate for {', '.join(hosts)} in {target}")
