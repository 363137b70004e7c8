"""``taiqu field search``: every meter of a simulated bus, and nothing else."""

from __future__ import annotations

import csv
import io
import json
import random
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.bus.link import Line
from gateway.config import MeterConfig
from gateway.field.cli import app
from gateway.field.output import archive_csv
from gateway.field.port import Port
from gateway.field.search import FoundMeter, SearchStats, hear, narrow, search_dlt645
from headend.archive.csvio import _parse as parse_archive_csv
from protocols.archive import COLUMNS
from protocols.dlt645 import Version

from .conftest import running_fleet

pytestmark = pytest.mark.realtime  # wall-clock windows on a paced simulated bus: run alone

runner = CliRunner()
FAST = 0.04  # response window on an unpaced simulated bus (replies come at once)


def crowded_addresses(n: int, seed: int = 7) -> list[str]:
    """``n`` random addresses, collisions forced: batches share a prefix, pairs a long suffix."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n - 6:
        batch = f"2026{rng.randrange(10**4):04d}"  # one delivery: the same 8 leading digits
        out.update(f"{batch}{rng.randrange(10**4):04d}" for _ in range(4))
    for _ in range(3):  # pairs agreeing in their low 5 digits: deep collisions
        tail = f"{rng.randrange(10**5):05d}"
        out.update(f"{rng.randrange(10**7):07d}{tail}" for _ in range(2))
    return sorted(out)[:n] if len(out) >= n else sorted(out)


def test_narrow_fixes_the_lowest_wildcard_byte_or_digit() -> None:
    assert narrow("AAAAAAAAAAAA")[:2] == ["AAAAAAAAAA00", "AAAAAAAAAA01"]
    assert len(narrow("AAAAAAAAAAAA")) == 100
    assert narrow("AAAAAAAAAA42")[-1] == "AAAAAAAA9942"
    assert narrow("AAAAAAAAAAA7", "digit") == [f"AAAAAAAAAA{d}7" for d in "0123456789"]
    assert narrow("202611240001") == []


def test_hear_tells_one_meter_from_a_collision() -> None:
    from protocols.dlt645 import AddressReply, Slave

    one = Slave().send(AddressReply("202611240001"))
    other = Slave().send(AddressReply("202611240002"))
    assert hear("AAAAAAAAAAAA", one, Version.V2007).addresses == ("202611240001",)
    assert not hear("AAAAAAAAAAAA", one, Version.V2007).collision
    overlapped = bytes(a & b for a, b in zip(one, other, strict=True))
    assert hear("AAAAAAAAAAAA", overlapped, Version.V2007).collision
    both = hear("AAAAAAAAAAAA", one + other, Version.V2007)
    assert both.collision and set(both.addresses) == {"202611240001", "202611240002"}
    assert hear("AAAAAAAAAAA2", one, Version.V2007).collision  # an answer that cannot be


def test_search_finds_every_meter_of_a_crowded_bus_and_nothing_else() -> None:
    addresses = crowded_addresses(32)
    assert len(addresses) == 32
    meters = [{"bus": "b", "address": a} for a in addresses]
    with running_fleet([{"name": "b", "pace": False}], meters) as fleet:
        stats = SearchStats()
        # socket:// has no UART: a fast line keeps the request's own wire time out of the way
        with Port(fleet.endpoints["b"], Line(115200, "E")) as port:
            # twice FAST: the simulated meters answer from this very process, where a first-use
            # import or a garbage collection in the middle of ~400 probes can exceed 40 ms (a
            # fresh clone's first run missed 4 meters that way); a real meter has no such pause
            found = search_dlt645(port, Version.V2007, 2 * FAST, stats, step="digit")
    assert found == addresses
    assert stats.collisions >= 10 and not stats.unresolved


def test_search_by_byte_default_and_both_editions(tmp_path: Path) -> None:
    meters = [
        {"bus": "b", "address": "202611240101"},
        {"bus": "b", "address": "202611240377"},
        {"bus": "b", "address": "199700000055", "protocol": "dlt645-1997"},
        {"bus": "b", "address": "7", "protocol": "modbus", "model": "SDM630"},
    ]
    toml_path, csv_path = tmp_path / "meters.toml", tmp_path / "meters.csv"
    with running_fleet([{"name": "b", "pace": False}], meters) as fleet:
        result = runner.invoke(
            app,
            [
                "search", fleet.endpoints["b"], "--bauds", "115200", "--timeout", "0.03",
                "--bus", "line1", "--area", "a1", "--json",
                "--write-toml", str(toml_path), "--write-csv", str(csv_path),
            ],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    got = {(m["protocol"], m["address"]) for m in report["meters"]}
    assert got == {
        ("dlt645-2007", "202611240101"),
        ("dlt645-2007", "202611240377"),
        ("dlt645-1997", "199700000055"),
    }
    assert report["search"]["requests"] == 1 + 100 + 1  # 2007: AA…AA, then 100; 1997: one
    rows = tomllib.loads(toml_path.read_text())["meters"]
    assert {r["address"] for r in rows} == {a for _, a in got}
    for row in rows:
        MeterConfig(**row)  # what the gateway accepts
    table = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert {r["id"] for r in table} == {a for _, a in got}
    assert all(r["area"] == "a1" and r["bus"] == "line1" for r in table)


def test_line_noise_is_not_taken_for_a_collision() -> None:
    addresses = ["202611240001", "202611240002", "202611240013"]
    meters = [{"bus": "n", "address": a} for a in addresses]
    with running_fleet([{"name": "n", "pace": False, "faults": {"noise": 3}}], meters) as fleet:
        stats = SearchStats()
        with Port(fleet.endpoints["n"], Line(115200, "E")) as port:
            found = search_dlt645(port, Version.V2007, FAST, stats, step="digit")
    assert found == addresses
    assert stats.probes == 1 + 10  # root, then the last digit: each meter alone


def test_the_archive_csv_written_is_what_the_head_end_imports() -> None:
    found = [
        FoundMeter("dlt645-2007", "202611240101", "2400-8E1"),
        FoundMeter("dlt645-1997", "199700000055", "1200-8E1"),
        FoundMeter("modbus", "7", "9600-8N1", "SDM630"),
    ]
    text = archive_csv(found, "line1", "a1")
    assert text.splitlines()[0] == ",".join(COLUMNS)  # the shared contract, in its order
    imported = [meter for _, meter in parse_archive_csv(text)]  # raises on any bad row
    assert [(m.id, m.protocol, m.address, m.model) for m in imported] == [
        ("202611240101", "dlt645-2007", "202611240101", None),
        ("199700000055", "dlt645-1997", "199700000055", None),
        ("line1:7", "modbus", "7", "SDM630"),
    ]
    assert all(m.area == "a1" and m.bus == "line1" and not m.keep_power for m in imported)


def test_modbus_scan_finds_every_unit_and_nothing_else(tmp_path: Path) -> None:
    units = [1, 3, 7, 12, 30]
    meters = [
        {"bus": "m", "address": str(u), "protocol": "modbus", "model": "SDM630"} for u in units
    ]
    meters.append({"bus": "m", "address": "202611240001"})  # a DL/T 645 meter on the same line
    toml_path = tmp_path / "m.toml"
    with running_fleet([{"name": "m", "pace": False}], meters) as fleet:
        result = runner.invoke(
            app,
            [
                "search", fleet.endpoints["m"], "--protocols", "", "--modbus", "1-32",
                "--model", "SDM630", "--timeout", "0.03", "--bus", "m", "--json",
                "--modbus-baud", "115200",
                "--write-toml", str(toml_path),
            ],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)["meters"]
    assert [int(m["address"]) for m in found] == units
    assert {m["id"] for m in found} == {f"m:{u}" for u in units}
    for row in tomllib.loads(toml_path.read_text())["meters"]:
        assert MeterConfig(**row).model == "SDM630"


def test_an_empty_bus_exits_1() -> None:
    with running_fleet([{"name": "e", "pace": False}], []) as fleet:
        result = runner.invoke(
            app, ["search", fleet.endpoints["e"], "--bauds", "115200", "--timeout", "0.03"]
        )
    assert result.exit_code == 1
    assert "0 meter(s)" in result.output


@pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217")
def test_search_over_rfc2217_reports_the_line_each_meter_answers_at() -> None:
    meters = [
        {"bus": "r", "address": "202611240001", "line": "1200 8E1"},
        {"bus": "r", "address": "202611240002", "line": "9600 8E1"},
        {"bus": "r", "address": "199700000003", "protocol": "dlt645-1997", "line": "1200 8E1"},
    ]
    with running_fleet([{"name": "r", "pace": False}], meters) as fleet:
        result = runner.invoke(app, ["search", fleet.rfc2217["r"], "--timeout", "0.05", "--json"])
    assert result.exit_code == 0, result.output
    got = {(m["protocol"], m["address"], m["line"]) for m in json.loads(result.output)["meters"]}
    assert got == {
        ("dlt645-2007", "202611240001", "1200 8E1"),
        ("dlt645-2007", "202611240002", "9600 8E1"),
        ("dlt645-1997", "199700000003", "1200 8E1"),
    }


def test_a_reply_still_arriving_when_the_window_ends_is_waited_for() -> None:
    """On a byte-timed bus a reply trickles in; the window (60 ms) ends in the middle of it."""
    addresses = ["202611240011", "202611240021", "202611240032"]
    meters = [{"bus": "p", "address": a} for a in addresses]  # 50 ms response delay each
    with running_fleet([{"name": "p", "pace": True, "baud": 9600}], meters) as fleet:
        stats = SearchStats()
        with Port(fleet.endpoints["p"], Line(9600, "E")) as port:
            found = search_dlt645(port, Version.V2007, 0.06, stats, step="digit")
    assert found == addresses
    assert stats.collisions == 2  # AA…AA (all three), AA…A1 (two): garbled byte for byte
