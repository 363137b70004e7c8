"""Shared samples for the register-map tests: the shipped models and a minimal map file."""

from __future__ import annotations

from typing import Any

MODELS = ["DDSU666", "DTSU666", "SDM120", "SDM630"]


def minimal_map(**row: Any) -> dict[str, Any]:
    """A one-row map file (parsed TOML) with ``row`` overriding the row's keys."""
    base = {
        "quantity": "voltage.a",
        "address": 0,
        "function": 4,
        "type": "float32",
        "unit": "V",
        "resolution": "0.1",
    }
    return {
        "model": "X",
        "vendor": "v",
        "title": "t",
        "phases": 1,
        "sources": ["s"],
        "registers": [base | row],
        "serial": {
            "baud": 9600,
            "parity": "N",
            "data_bits": 8,
            "stop_bits": 1,
            "baud_options": [9600],
            "unit_ids": [1, 247],
            "default_unit": 1,
        },
    }
