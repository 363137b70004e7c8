"""The commissioning tools of ``taiqu field``: read, search, probe and monitor a bus.

``port`` opens a port and times one transaction, ``reads`` builds and decodes reads (DL/T 645
2007/1997, Modbus), ``search`` finds meters (wildcard narrowing, unit scan), ``probe`` learns
one meter's line settings and state, ``monitor`` splits passive bus traffic into frames,
``cli`` is the typer app.  Port I/O goes through ``gateway.bus.link.SerialLink``.
"""
