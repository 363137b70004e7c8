"""``taiqu field probe``: edition and line settings over RFC 2217, clock and relay."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from typer.testing import CliRunner

from gateway.field.cli import app

from .conftest import START, running_fleet, wait_idle

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217")
NEW, OLD = "202611240001", "199700000002"


def test_probe_learns_edition_line_clock_and_relay() -> None:
    meters = [
        {"bus": "b", "address": NEW, "line": "9600 8E1"},
        {"bus": "b", "address": OLD, "protocol": "dlt645-1997", "line": "1200 8E1"},
    ]
    with running_fleet([{"name": "b", "pace": False}], meters) as fleet:
        url = fleet.rfc2217["b"]
        args = ["--bauds", "1200,9600", "--parities", "EN", "-t", "0.1", "--json"]
        new = runner.invoke(app, ["probe", url, NEW, *args])
        wait_idle(fleet)
        old = runner.invoke(app, ["probe", url, OLD, *args])
        wait_idle(fleet)
        absent = runner.invoke(
            app,
            [
                "probe",
                fleet.endpoints["b"],
                "202611249999",
                "--bauds",
                "2400",
                "-t",
                "0.1",
                "--json",
            ],
        )
    assert new.exit_code == 0, new.output
    report = json.loads(new.output)
    assert report["answers_at"] == [{"protocol": "dlt645-2007", "line": "9600 8E1"}]
    assert report["tried"] == 8  # 2 bauds × 2 parities × 2 editions
    values = report["values"]
    assert values["relay.state"] == "closed"
    clock = datetime.fromisoformat(f"{values['meter.date']}T{values['meter.time']}")
    assert abs((clock - START.replace(tzinfo=None)).total_seconds()) < 120

    assert old.exit_code == 0, old.output
    report = json.loads(old.output)
    assert report["answers_at"] == [{"protocol": "dlt645-1997", "line": "1200 8E1"}]
    assert report["values"]["relay.state"].startswith("unknown")
    assert "meter.time" in report["values"]

    assert absent.exit_code == 1
    report = json.loads(absent.output)
    assert report["answers_at"] == [] and "server's" in report["note"]
