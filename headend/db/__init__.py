"""The data layer: one ``MetaData``, the engine, the migration runner, one module per resource.

Core tables are declared in ``tables``; the operations tables (users, commands, audit) in
``ops_tables`` when that module is installed.  Both share ``metadata``.
"""

from __future__ import annotations

import importlib
import importlib.util

from headend.db.engine import make_engine, reading, writing
from headend.db.errors import (
    Conflict,
    HeadendError,
    InvalidRequest,
    NotFound,
    StorageError,
)
from headend.db.tables import metadata

# Table modules of the other parts of the head-end register their tables on ``metadata``.
for _name in ("ops_tables", "prepay_tables", "analytics_tables"):
    if importlib.util.find_spec(f"headend.db.{_name}") is not None:
        importlib.import_module(f"headend.db.{_name}")

__all__ = [
    "Conflict",
    "HeadendError",
    "InvalidRequest",
    "NotFound",
    "StorageError",
    "make_engine",
    "metadata",
    "reading",
    "writing",
]
