"""``taiqu sim serve`` on a port already taken names the endpoint and the way out (issue 23)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from simulators.cli import app


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def serve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve", "--meters", "1", *args])
    return result.exit_code, result.output


def test_a_bus_port_in_use_names_the_bus_and_the_port(taken: int) -> None:
    code, out = serve("--listen", f"tcp://127.0.0.1:{taken}", "--control", "")
    assert code == 2
    assert f"cannot open the endpoint of bus 'bus1' on 127.0.0.1:{taken}" in out
    assert "another `taiqu sim serve`" in out and "port 0 picks a free one" in out


def test_the_control_port_in_use_names_the_control_interface(taken: int) -> None:
    code, out = serve("--listen", "tcp://127.0.0.1:0", "--control", f"127.0.0.1:{taken}")
    assert code == 2
    assert f"cannot open the control interface on 127.0.0.1:{taken}" in out
    assert "Traceback" not in out
