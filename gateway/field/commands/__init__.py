"""One module per ``taiqu field`` command (``gateway.field.cli`` registers them)."""
