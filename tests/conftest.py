"""Test-suite wide fixtures: the private services (see tests/services.py)."""

from tests.services import mosquitto, mosquitto_binary, postgres_url  # noqa: F401
