"""The dispatcher: lazy sub-commands and clean errors."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taiqu.cli", *args], capture_output=True, text=True)


def test_help_lists_commands():
    out = run("--help")
    assert out.returncode == 0
    for name in ("dlt645", "sim", "gateway", "headend", "demo"):
        assert name in out.stdout


def test_unknown_command_exits_2_with_one_line():
    out = run("frobnicate")
    assert out.returncode == 2
    assert "unknown command 'frobnicate'" in out.stderr
    assert "Traceback" not in out.stderr


def test_sub_commands_are_imported_lazily():
    code = (
        "import sys; import taiqu.cli\n"
        "print(any(m.split('.')[0] in ('gateway','headend','simulators','fastapi') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_clock_command_prints_time():
    out = run("clock", "--start", "2026-01-01T00:00:00+08:00", "--factor", "1")
    assert out.returncode == 0, out.stderr
    assert '"now"' in out.stdout
