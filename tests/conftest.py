"""Test-suite wide fixtures: the private services (see tests/services.py), and Hypothesis without
its per-example deadline: on a loaded 2-core machine running the suite in parallel an example can
take longer than 200 ms, which Hypothesis reports as a failure (or as ``Flaky`` when the re-run
is faster). Timing is measured in ``bench/``, not asserted in tests."""

from hypothesis import settings

from tests.services import mosquitto, mosquitto_binary, postgres_url  # noqa: F401

settings.register_profile("taiqu", deadline=None)
settings.load_profile("taiqu")
