"""Taiqu: the distribution's neutral shell (version, CLI dispatcher, the shared clock).

The four application packages live beside this one: ``protocols`` (sans-IO codecs and the
MQTT contract), ``gateway``, ``headend`` and ``simulators``.  Application packages may import
``protocols`` and ``taiqu.clock``; they never import each other.
"""

__version__ = "0.1.0"
