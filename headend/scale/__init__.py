"""Running the head-end beyond one machine: the storage maintenance job (``job``).

Shared-subscription ingest needs nothing here: every ``taiqu headend ingest`` is exact with
others in the same ``[mqtt] shared_group`` (``headend.ingest.streams``).  Exceptions are those of
``headend.db.errors`` (``StorageError`` for a schema that is not ready).
"""
