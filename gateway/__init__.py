"""The concentrator daemon: config, links, one worker per RS-485 bus, local store, MQTT uplink.

Runs on Raspberry Pi-class boards: it imports ``protocols`` and ``taiqu.clock`` only, never the
head-end, FastAPI or uvicorn.
"""
