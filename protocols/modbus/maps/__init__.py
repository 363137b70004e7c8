"""Register map data files, one TOML per meter model (see docs/modbus.md)."""
