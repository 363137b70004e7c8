"""One ingest process of a shared-subscription group: ``python -m headend.scale.worker CONFIG``.

It runs ``IngestService`` with a ``SharedStreamBook`` (headend.scale.shared) until SIGTERM or
SIGINT, then writes its counters as JSON to ``--stats``; ``--ready`` is touched once subscribed
(for tests and the scale benchmark).  ``--forget`` drops the client id's broker session (a
retired ingest process's share of the group would otherwise queue at the broker).
The configuration must set ``[mqtt] shared_group`` and a ``client_id`` unique to this process.
Exit status: 0 after a clean stop, 2 for a bad configuration, 3 when the client id is taken.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from headend.config import Settings, load_settings
from headend.db import make_engine
from headend.db.errors import ConfigError, Conflict
from headend.ingest.service import IngestService, Received
from headend.scale.shared import SharedStreamBook


def _gateway(message: Received) -> str:
    parts = message.topic.split("/")
    return parts[2] if len(parts) > 2 else ""


class SharedIngestService(IngestService):
    """``IngestService`` that stores each group in gateway order.

    Stream locks are then taken in one global order by every process, so two processes never
    deadlock on two gateways; the sort is stable, so one gateway's messages keep their order.
    """

    def _store(self, group: list[Received]) -> None:
        super()._store(sorted(group, key=_gateway))


def shared_ingest(settings: Settings) -> IngestService:
    """An ingest service whose stream state is exact with other consumers of the group."""
    if not settings.mqtt.shared_group:
        raise ConfigError(f"{settings.source}: mqtt.shared_group: set a group name for sharing")
    engine = make_engine(settings.database)
    service = SharedIngestService(engine, settings)
    service.ingestor.streams = SharedStreamBook(engine)
    return service


def forget_session(settings: Settings, timeout: float = 10.0) -> None:
    """Connect once with a clean session: the broker drops the process's queue and membership.

    A stopped ingest's persistent session stays a member of the shared group, and the broker
    keeps queueing its share of the gateways' messages for it until it comes back; run this when
    an ingest process is retired for good.
    """
    cfg = settings.mqtt
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id, clean_session=True)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password())
    if cfg.ca_file:
        client.tls_set(
            ca_certs=str(cfg.ca_file),
            certfile=str(cfg.cert_file) if cfg.cert_file else None,
            keyfile=str(cfg.key_file) if cfg.key_file else None,
        )
    try:
        client.connect(cfg.host, cfg.port, cfg.keepalive)
    except OSError as exc:
        raise ConfigError(f"mqtt: cannot reach {cfg.host}:{cfg.port} ({exc})") from None
    client.loop_start()
    deadline = time.monotonic() + timeout
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    """Run until signalled; write the counters to ``--stats``."""
    parser = argparse.ArgumentParser(prog="python -m headend.scale.worker")
    parser.add_argument("config", type=Path)
    parser.add_argument("--stats", type=Path, default=None)
    parser.add_argument("--ready", type=Path, default=None, help="touched once subscribed")
    parser.add_argument(
        "--forget", action="store_true", help="drop this client id's broker session, then exit"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = load_settings(args.config)
        if args.forget:
            forget_session(settings)
            return 0
        service = shared_ingest(settings)
    except ConfigError as exc:
        print(f"ingest worker: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _signal(_n: int, _f: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    try:
        service.start()
    except Conflict as exc:
        print(f"ingest worker: {exc}", file=sys.stderr)
        return 3
    print("ingest worker running", file=sys.stderr, flush=True)
    if args.ready is not None:
        while not stop.is_set() and not service.connected.wait(0.2):
            pass
        args.ready.touch()
    stop.wait()
    service.stop()
    if args.stats is not None:
        args.stats.write_text(json.dumps(asdict(service.stats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
