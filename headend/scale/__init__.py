"""Running the head-end beyond one machine: shared-subscription ingest, maintenance jobs.

Exceptions are those of ``headend.db.errors`` (``StorageError`` for a schema that is not ready).
"""
