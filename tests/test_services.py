"""The private service fixtures themselves work (so a broken set-up fails loudly, once)."""

from __future__ import annotations

import socket

import pytest

from tests.services import wait_for_port

pytestmark = pytest.mark.integration


def test_mosquitto_starts_stops_and_restarts(mosquitto):
    wait_for_port(mosquitto.port)
    mosquitto.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", mosquitto.port), 0.5):
        pass
    mosquitto.start()
    wait_for_port(mosquitto.port)


def test_postgres_accepts_connections(postgres_url):
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 1 + 1")).scalar() == 2
    engine.dispose()
