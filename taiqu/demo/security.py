"""The demo's broker as deployed: the shipped mosquitto config and ACL, enrolled identities.

With mosquitto installed the demo runs the shipped ``deploy/mosquitto/taiqu.conf`` and ``acl``
with only their paths moved into the work directory and the TLS listener on a loopback port
(``mosquitto_conf``): no anonymous access, TLS from a local CA (``taiqu headend init-ca``),
every gateway with its own identity and the head-end with its own (``enrol``, through the same
``taiqu headend enrol-gateway`` / ``enrol-headend`` commands an operator runs).  Each gateway
installs its enrolment bundle: the bundle's ``gateway-security.toml`` is merged key by key into
the gateway.toml the simulators wrote (``install_bundle``), with the bundle's files referred to
where they are, so whatever the enrolment puts in the snippet (broker identity, the head-end's
trust file, any further key) reaches the gateway unchanged.

Without mosquitto the embedded amqtt broker (``taiqu.broker``) is anonymous and plain TCP: the
gateways install the bundle without its ``[broker]`` table.  That is a convenience for a laptop,
not the deployed form.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from taiqu.demo.client import DemoError
from taiqu.demo.fleet import wait_port
from taiqu.demo.supervise import Supervisor

HEADEND_IDENTITY = "taiqu-headend"  # has its own user block in the shipped ACL
SNIPPET = "gateway-security.toml"


def shipped_dir() -> Path:
    """``deploy/mosquitto`` of the source tree the demo runs from."""
    here = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
    if not (here / "taiqu.conf").is_file() or not (here / "acl").is_file():
        raise DemoError(f"the shipped broker configuration is missing ({here}): run from a clone")
    return here


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin")


def _swap(text: str, old: str, new: str) -> str:
    if old not in text:
        raise DemoError(f"deploy/mosquitto/taiqu.conf no longer has {old.strip()!r}")
    return text.replace(old, new)


def mosquitto_conf(shipped: str, broker_dir: Path, data_dir: Path, port: int) -> str:
    """The shipped config with its paths in the work directory and its listener on loopback.

    Run by root, mosquitto would switch to its own user, which cannot read the 0600 files of a
    private work directory: the demo then keeps it as the invoking user (``user root``).
    """
    text = _swap(shipped, "/etc/mosquitto/taiqu/", f"{broker_dir}/")
    text = _swap(text, "/var/lib/mosquitto/", f"{data_dir}/")
    text = _swap(text, "\nlistener 8883\n", f"\nlistener {port} 127.0.0.1\n")
    text = _swap(text, "\nlog_dest syslog\n", "\nlog_dest stdout\n")
    if os.geteuid() == 0:
        text = (
            "# The demo runs as root: no privilege drop (see taiqu.demo.security).\nuser root\n"
            + text
        )
    return text


def start_broker(sup: Supervisor, port: int, broker_dir: Path | None) -> str:
    """mosquitto from the shipped config (``broker_dir``: passwd, acl, certificates), or amqtt.

    ``broker_dir`` None: the embedded amqtt broker (mosquitto is not installed).
    """
    binary = mosquitto_binary()
    if binary and broker_dir is not None:
        data = sup.workdir / "broker-data"
        data.mkdir(exist_ok=True)
        conf = sup.workdir / "mosquitto.conf"
        shipped = (shipped_dir() / "taiqu.conf").read_text()
        conf.write_text(mosquitto_conf(shipped, broker_dir, data, port))
        proc = sup.start("broker", [binary, "-c", str(conf)])
        kind = "mosquitto, shipped config and ACL, TLS, per-gateway identities"
    else:
        proc = sup.start("broker", [sys.executable, "-m", "taiqu.broker", "--port", str(port)])
        kind = "embedded amqtt broker: anonymous, NOT the deployed form (install mosquitto)"
    wait_port(port, proc, 15, "the broker")
    return kind


def prepare_broker_dir(broker_dir: Path) -> None:
    """The broker's directory with the shipped ACL (enrolment adds the passwords)."""
    broker_dir.mkdir(parents=True, exist_ok=True)
    acl = broker_dir / "acl"
    shutil.copyfile(shipped_dir() / "acl", acl)
    acl.chmod(0o640)


def _taiqu(*args: str) -> list[str]:
    return [sys.executable, "-m", "taiqu.cli", *args]


def run_headend(
    step: list[str], config: Path | None, cwd: Path, env: dict[str, str], stdin: bytes = b""
) -> str:
    """``taiqu headend STEP [--config CONFIG]``; its output (``DemoError`` naming the step)."""
    done = subprocess.run(
        _taiqu("headend", *step, *(["--config", str(config)] if config else [])),
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env={**os.environ, **env},
    )
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip()[-300:]
        raise DemoError(f"taiqu headend {step[0]} failed: {why}")
    return done.stdout.decode(errors="replace")


def enrol(
    config: Path,
    gateways: Iterable[str],
    *,
    valid_from: str,
    tls: bool,
    password_file: Path,
    cwd: Path,
    env: dict[str, str],
    before_gateways: Callable[[], object] = lambda: None,
) -> None:
    """What an operator runs before the first gateway connects: the head-end's signing key
    (``keys-init --valid-from``), the local CA and the broker's certificate (``tls``), the
    head-end's broker identity (password to ``password_file``), then one identity and bundle per
    gateway (the bundle carries the CA and the trust file, so it comes last).  Independent steps
    run side by side: the password file is locked by each writer and the shipped ACL already
    holds the gateway patterns and the head-end's block.  ``before_gateways`` waits for what the
    gateways' enrolment needs besides (the migrated database it registers their keys in)."""
    first = [
        ["keys-init", "--valid-from", valid_from],
        ["enrol-headend", HEADEND_IDENTITY, "--password-file", str(password_file)],
    ]
    if tls:
        first.append(["init-ca", "127.0.0.1", "localhost"])
    with ThreadPoolExecutor(4) as pool:
        for n, stage in enumerate((first, [["enrol-gateway", gw] for gw in gateways])):
            if n:
                before_gateways()
            for future in [pool.submit(run_headend, step, config, cwd, env) for step in stage]:
                future.result()


def _value(value: Any) -> str:
    """A TOML value (strings, numbers, booleans, arrays of those)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise DemoError(f"cannot write {value!r} into a gateway.toml")


def _tables(data: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Table name (dotted) → its scalar keys; ``""`` is the top level."""
    out: dict[str, dict[str, Any]] = {prefix: {}}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _tables(value, f"{prefix}.{key}" if prefix else key)
        else:
            out[prefix][key] = value
    return out


def _local(value: Any, bundle: Path) -> Any:
    """A path to a file of the bundle (as installed on a gateway) → that file where it is."""
    if isinstance(value, str) and value.startswith("/") and (bundle / Path(value).name).is_file():
        return str(bundle / Path(value).name)
    return value


def merge_toml(text: str, tables: dict[str, dict[str, Any]], note: str) -> str:
    """Set each table's keys in a TOML text (replacing the key's line, or adding it)."""
    lines = text.splitlines()
    for table, keys in tables.items():
        if not keys:
            continue
        if table:
            header = f"[{table}]"
            at = next((i for i, line in enumerate(lines) if line.strip() == header), None)
            if at is None:
                lines += ["", f"# {note}", header]
                at = len(lines) - 1
            else:
                while at > 0 and lines[at - 1].lstrip().startswith("#"):
                    del lines[at - 1]  # what the old table said no longer holds
                    at -= 1
                lines.insert(at, f"# {note}")
                at += 1
        else:
            at = -1
        end = next(
            (i for i in range(at + 1, len(lines)) if lines[i].lstrip().startswith("[")),
            len(lines),
        )
        for key, value in keys.items():
            line = f"{key} = {_value(value)}"
            found = next(
                (i for i in range(at + 1, end) if re.match(rf"\s*{re.escape(key)}\s*=", lines[i])),
                None,
            )
            if found is None:
                while end > at + 1 and not lines[end - 1].strip():
                    end -= 1
                lines.insert(end, line)
                end += 1
            else:
                lines[found] = line
    return "\n".join(lines) + "\n"


def install_bundle(config: Path, bundle: Path, *, broker: bool = True) -> None:
    """Merge the bundle's ``gateway-security.toml`` into a gateway.toml (module docstring).

    ``broker`` False: leave ``[broker]`` as it is (the anonymous amqtt fallback).  Checks that
    the result parses and holds every key of the snippet.
    """
    snippet = tomllib.loads((bundle / SNIPPET).read_text())
    tables = {
        name: {k: _local(v, bundle) for k, v in keys.items()}
        for name, keys in _tables(snippet).items()
        if broker or name != "broker"
    }
    merged = merge_toml(config.read_text(), tables, f"from the enrolment bundle {bundle}")
    config.write_text(merged)
    got = _tables(tomllib.loads(merged))
    wrong = [
        f"{t}.{k}"
        for t, keys in tables.items()
        for k, v in keys.items()
        if got.get(t, {}).get(k) != v
    ]
    if wrong:
        raise DemoError(f"{config}: could not install {bundle / SNIPPET} ({', '.join(wrong)})")
