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


# The bus and the uplink are the gateway's I/O edges: they take plain settings, never the config
# model or the polling side (no circles: config imports them, not the reverse).
EDGE_ALLOWED = {"gateway.uplink.settings", "gateway.bus.link", "gateway.bus.timing"}


@pytest.mark.parametrize("edge", ["gateway/bus", "gateway/uplink"])
def test_gateway_edges_import_neither_polling_nor_config(edge):
    bad = [(f, m) for f, m in imports_of(edge)
           if m.startswith(("gateway.polling", "gateway.config", "gateway.daemon"))
           and m not in EDGE_ALLOWED]
    assert bad == []


def _module_graph(package: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(), str(path))
        deps = set()
        top = list(tree.body)
        for node in tree.body:  # `if TYPE_CHECKING:` imports count: a circle for the reader too
            if isinstance(node, ast.If):
                top += node.body
        for node in top:  # module-level imports only: a function-local import is lazy
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d.split(".")[0] == package}
    return graph


def test_no_import_circles_between_gateway_packages():
    def pkg(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2])

    edges: dict[str, set[str]] = {}
    for module, deps in _module_graph("gateway").items():
        for dep in deps:
            if pkg(dep) != pkg(module):
                edges.setdefault(pkg(module), set()).add(pkg(dep))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    circles = sorted(p for p in edges if reaches(p, p, {p}))
    assert circles == []


def test_no_file_prefix_stands_in_for_a_folder_in_the_gateway():
    names = [p.stem for p in (ROOT / "gateway").glob("*.py") if p.stem != "__init__"]
    prefixes = {n.split("_")[0] for n in names if "_" in n}
    assert sorted(p for p in prefixes if sum(n.startswith(p + "_") for n in names) > 1) == []
