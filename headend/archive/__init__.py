"""The meter archive (档案), the one source of truth: gateways, areas and meters, effective-dated.

``effective``: generic versioned rows (create, change, retire, as-of queries); ``models``: the
API's input and output shapes; ``service``: the audited domain operations (meter replacement
included); ``push``: the versioned archive each gateway runs (published retained on
``down/archive`` through the MQTT outbox); ``csvio``: CSV import and export of meters.
"""
