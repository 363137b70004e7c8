"""An embedded MQTT broker for the demo when mosquitto is not installed (``amqtt``).

Run as ``python -m taiqu.broker --port 1883``.  It keeps sessions and retained messages in memory
only: fine for a demo on a laptop, not for production (use mosquitto or EMQX with persistence).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal


async def serve(host: str, port: int) -> None:
    """Serve MQTT on host:port until SIGINT/SIGTERM."""
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):
        await broker.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
