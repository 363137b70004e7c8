"""The operators' JSON API under ``/api/v1``: one router module per resource.

``ROUTERS`` lists every module ``create_app`` mounts (``headend.api.<name>.router``); modules not
installed yet are skipped.
"""

ROUTERS = (
    "auth",
    "users",
    "gateways",
    "areas",
    "meters",
    "readings",
    "events",
    "ingest_admin",
    "commands",
    "audit",
    "prepay",
    "vee",
    "analytics",
)
PREFIX = "/api/v1"
