"""Optional hooks other parts of the head-end provide (commands, audit), looked up once."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any


def optional_hook(module: str, attr: str) -> Callable[..., Any] | None:
    """``module.attr`` if that module is installed, else None (errors inside it propagate)."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:  # a parent package is missing
        return None
    if spec is None:
        return None
    found = getattr(importlib.import_module(module), attr, None)
    return found if callable(found) else None


def result_hook() -> Callable[..., Any] | None:
    """``headend.commands.ingest.on_result(conn, gateway, result)``."""
    return optional_hook("headend.commands.ingest", "on_result")


def audit_hook() -> Callable[..., Any] | None:
    """``headend.audit.append(conn, actor, action, subject, detail)``."""
    return optional_hook("headend.audit", "append")
