"""The offline install bundle: built by the script, complete, checksummed, installable offline."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from gateway.config import load_config

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "build-gateway-bundle.sh"


def build(out: Path, *args: str) -> Path:
    done = subprocess.run(
        ["bash", str(SCRIPT), "--out", str(out), "--python", sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    tarball = Path(done.stdout.strip().splitlines()[-1])
    assert tarball.is_file() and tarball.parent == out
    return tarball


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The bundle with only the taiqu wheel (fast), unpacked."""
    out = tmp_path_factory.mktemp("dist")
    tarball = build(out, "--no-deps")
    with tarfile.open(tarball) as tar:
        tar.extractall(out, filter="data")
    (top,) = [p for p in out.iterdir() if p.is_dir()]
    assert tarball.name == f"{top.name}.tar.gz"
    return top


def test_the_bundle_holds_everything_install_needs(bundle):
    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    for needed in (
        "install.sh",
        "taiqu-gateway.service",
        "gateway.example.toml",
        "gateway.env.example",
        "BUILD-INFO",
        "SHA256SUMS",
    ):
        assert needed in names
    assert (bundle / "install.sh").stat().st_mode & 0o111
    unit = (ROOT / "systemd" / "taiqu-gateway.service").read_bytes()
    assert (bundle / "taiqu-gateway.service").read_bytes() == unit
    info = dict(
        line.split("=", 1) for line in (bundle / "BUILD-INFO").read_text().splitlines() if line
    )
    assert info["deps"] == "none" and info["name"] == bundle.name


def test_the_wheelhouse_has_the_taiqu_wheel_with_the_gateway_and_without_tests(bundle):
    (wheel,) = (bundle / "wheelhouse").glob("taiqu-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = zf.read(metadata).decode()
    for module in (
        "gateway/events/detector.py",
        "gateway/commands/executor.py",
        "protocols/dlt645/__init__.py",
    ):
        assert module in names
    assert not any(n.startswith("tests/") for n in names)
    assert "Requires-Dist: paho-mqtt" in meta


def test_every_file_matches_its_checksum(bundle):
    lines = (bundle / "SHA256SUMS").read_text().splitlines()
    assert len(lines) >= 6
    for line in lines:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest, name


def test_the_example_configuration_loads(bundle):
    cfg = load_config(bundle / "gateway.example.toml")
    assert str(cfg.data_dir) == "/var/lib/taiqu-gateway"  # the unit's StateDirectory


def test_install_script_is_valid_bash_and_refuses_to_run_unprivileged(bundle):
    assert subprocess.run(["bash", "-n", str(bundle / "install.sh")]).returncode == 0
    if shutil.which("shellcheck"):
        done = subprocess.run(["shellcheck", str(bundle / "install.sh")], capture_output=True)
        assert done.returncode == 0, done.stdout.decode()
    import os

    if os.geteuid() != 0:
        done = subprocess.run(
            ["bash", str(bundle / "install.sh")], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1 and "run as root" in done.stderr


def test_bad_options_are_refused_with_a_message(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "--frobnicate"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown option" in done.stderr
    done = subprocess.run(
        ["bash", str(SCRIPT), "--platform", "manylinux_2_36_aarch64"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--python-version" in done.stderr


@pytest.mark.integration
def test_the_full_bundle_installs_offline_into_a_fresh_venv(tmp_path):
    """Base dependencies only, as install.sh does it: ``--no-index --find-links``."""
    out = tmp_path / "dist"
    tarball = build(out)
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path, filter="data")
    top = tmp_path / tarball.name.removesuffix(".tar.gz")
    wheels = {p.name.split("-")[0].lower() for p in (top / "wheelhouse").glob("*.whl")}
    assert {"taiqu", "pydantic", "paho_mqtt", "pyserial"} <= wheels
    assert not {"fastapi", "sqlalchemy", "uvicorn"} & wheels  # no head-end on a Pi
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index"]
    done = subprocess.run(
        [*pip, "--find-links", str(top / "wheelhouse"), "taiqu"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    check = "import gateway.events, gateway.commands, gateway.daemon.notify, protocols.dlt645"
    assert subprocess.run([str(env / "bin" / "python"), "-c", check]).returncode == 0
