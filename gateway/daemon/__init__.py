"""The daemon's wiring: start-up and schedules (``app``), archive pushes (``archive``), what
commands need of the polling side (``ops``), health and metrics, systemd notification."""
