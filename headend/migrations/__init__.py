"""Numbered schema migrations: ``NNNN_name.py`` defining ``upgrade(conn)`` (headend.db.migrate)."""
