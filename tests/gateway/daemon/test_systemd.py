"""The systemd unit: its keys (parsed here, always) and systemd's own checks (where available)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from taiqu.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "systemd" / "taiqu-gateway.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections → key → values (systemd allows repeated keys; comments and blanks skipped)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"line {number}: key outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"line {number}: not KEY=value: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


def one(unit, section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values, f"[{section}] {key}= missing"
    return values[-1]


def test_the_unit_is_a_notify_service_with_a_watchdog_and_bounded_restarts(unit):
    assert one(unit, "Service", "Type") == "notify"
    assert int(one(unit, "Service", "WatchdogSec")) >= 30  # a slow bus turn must not trip it
    assert one(unit, "Service", "Restart") == "on-failure"
    assert int(one(unit, "Unit", "StartLimitBurst")) <= 10
    assert int(one(unit, "Unit", "StartLimitIntervalSec")) >= 60
    assert one(unit, "Service", "RestartPreventExitStatus") == "2"  # bad config: no restart loop
    assert "multi-user.target" in one(unit, "Install", "WantedBy")


def test_the_unit_runs_the_gateway_command_as_a_dedicated_user(unit):
    exec_start = one(unit, "Service", "ExecStart").split()
    assert exec_start[:3] == ["/opt/taiqu/venv/bin/taiqu", "gateway", "run"]
    assert exec_start[3:] == ["--config", "/etc/taiqu/gateway.toml"]
    assert "gateway" in COMMANDS
    assert one(unit, "Service", "User") == "taiqu-gateway"
    assert "dialout" in one(unit, "Service", "SupplementaryGroups").split()
    assert one(unit, "Service", "StateDirectory") == "taiqu-gateway"
    assert one(unit, "Service", "ConfigurationDirectory") == "taiqu"


def test_the_unit_is_hardened(unit):
    service = unit["Service"]
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "PrivateDevices": "no",  # serial ports are real devices …
        "DevicePolicy": "closed",  # … but only those allowed below
        "StandardOutput": "journal",
    }
    for key, value in expected.items():
        assert service.get(key, [None])[-1] == value, key
    allowed = {v.split()[0] for v in service["DeviceAllow"]}
    assert {"char-ttyUSB", "char-ttyAMA"} <= allowed
    families = set(one(unit, "Service", "RestrictAddressFamilies").split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}  # AF_UNIX: sd_notify and journald
    assert one(unit, "Service", "SystemCallFilter").split()[0] == "@system-service"
    assert one(unit, "Service", "MemoryMax")
    assert one(unit, "Service", "CapabilityBoundingSet") == ""


def test_the_parser_rejects_what_systemd_would_not_read():
    with pytest.raises(AssertionError):
        parse_unit("Type=notify\n")
    with pytest.raises(AssertionError):
        parse_unit("[Service]\nType notify\n")


def verifiable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an existing program (verify checks it exists)."""
    text = UNIT.read_text()
    true = shutil.which("true") or "/bin/true"
    lines = [f"ExecStart={true}" if ln.startswith("ExecStart=") else ln for ln in text.splitlines()]
    copy = tmp_path / UNIT.name
    copy.write_text("\n".join(lines) + "\n")
    return copy


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(tmp_path):
    copy = verifiable_copy(tmp_path)
    out = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    ours = [ln for ln in out.stderr.splitlines() if copy.name in ln]
    assert out.returncode == 0 and ours == [], out.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_catches_a_broken_key(tmp_path):
    """The check above can fail: a misspelt key is reported."""
    copy = verifiable_copy(tmp_path)
    copy.write_text(copy.read_text().replace("Type=notify", "Tpye=notify"))
    out = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert "Tpye" in out.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_exposure_score_stays_low(tmp_path):
    copy = verifiable_copy(tmp_path)
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=30", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in out.stderr and "unrecognized" in out.stderr:
        pytest.skip("this systemd-analyze has no offline security check")
    assert out.returncode == 0, out.stdout[-2000:]
