"""Dependencies point one way: gateway, headend, simulators → protocols (and taiqu.clock)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = {"gateway", "headend", "simulators"}
# Modules protocol code may not import: it is sans-IO (no I/O, no clock, no event loop).
IO_MODULES = {"socket", "serial", "asyncio", "sqlite3", "time", "paho", "threading", "subprocess",
              "sqlite_utils", "select", "selectors", "fastapi", "requests", "httpx"}


def imports_of(package: str) -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out += [(str(path.relative_to(ROOT)), a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.append((str(path.relative_to(ROOT)), node.module))
    return out


@pytest.mark.parametrize("package", sorted(APPS))
def test_application_packages_never_import_each_other(package):
    bad = [(f, m) for f, m in imports_of(package) if m.split(".")[0] in APPS - {package}]
    assert bad == []


@pytest.mark.parametrize("package", sorted(APPS | {"protocols"}))
def test_only_the_clock_of_taiqu_is_shared(package):
    bad = [(f, m) for f, m in imports_of(package)
           if m.split(".")[0] == "taiqu" and m not in {"taiqu", "taiqu.clock"}]
    assert bad == []


def test_protocols_is_sans_io_and_imports_no_application():
    bad = [(f, m) for f, m in imports_of("protocols")
           if m.split(".")[0] in IO_MODULES | APPS | {"taiqu"}]
    # the field engineer's CLI modules are edges (they print); codecs are not
    bad = [(f, m) for f, m in bad if not f.endswith("cli.py") or m.split(".")[0] in APPS]
    assert bad == []


def test_importing_the_gateway_never_imports_fastapi():
    code = (
        "import importlib, pkgutil, sys, gateway\n"
        "for m in pkgutil.walk_packages(gateway.__path__, 'gateway.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in ('fastapi', 'uvicorn', 'starlette', 'sqlalchemy') if n in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
