"""The head-end: MQTT ingest, storage (SQLite or PostgreSQL), the operators' API and console."""
