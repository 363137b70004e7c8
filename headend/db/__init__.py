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

if importlib.util.find_spec("headend.db.ops_tables") is not None:
    importlib.import_module("headend.db.ops_tables")  # registers its tables on ``metadata``

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
