"""``taiqu field read`` against a peer implementation: the PyPI ``dlt645`` meter server.

The peer runs in its own cached venv (the fixtures of tests/simulators/test_peer_dlt645.py);
without PyPI the test skips and says why.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gateway.field.cli import app
from gateway.field.port import REFUSED
from tests.simulators import test_peer_dlt645 as peer

NAMEPLATE = peer.NAMEPLATE
peer_python = peer.peer_python  # the fixtures: a cached venv with the peer, its meter server
peer_server = peer.peer_server

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_field_read_reads_the_peer_meter_server(peer_server: int) -> None:
    url = f"socket://127.0.0.1:{peer_server}"
    result = runner.invoke(app, ["read", url, NAMEPLATE, "00010000", "voltage.a", "--json"])
    assert result.exit_code == 0, result.output
    energy, voltage = json.loads(result.output)
    assert energy["values"] == {"energy.active.import.total": "1234.56"}
    assert voltage["item"] == "02010100" and voltage["values"] == {"voltage.a": "231.4"}
    assert energy["frames"][0]["rx"].startswith("fefefefe68090024112620")
    block = runner.invoke(app, ["read", url, NAMEPLATE, "0001FF00", "--json"])
    assert block.exit_code == REFUSED  # the peer has no blocks: "no requested data"
    assert "no_requested_data" in json.loads(block.output)[0]["error"]
