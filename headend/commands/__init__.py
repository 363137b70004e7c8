"""Remote commands: requests checked against roles, area scopes and the guard rails; fan-out into
one contract ``Command`` per gateway; dispatch over MQTT; results from ``up/result``; expiry.

Modules: ``states`` (the lifecycle), ``service`` (create / approve / cancel), ``views`` (reading
back within a scope), ``dispatcher`` (publish and expire), ``ingest`` (``on_result``),
``directory`` (archive facts), ``params`` (per-action parameters), ``signing`` (the ``Signer``
place).  Errors are the head-end's (``headend.db.errors``): ``InvalidRequest``, ``NotFound``;
refusals are values (``service.Refusal``), audited before they are answered.
"""
