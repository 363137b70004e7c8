"""The gateway's MQTT uplink: store-and-forward with end-to-end acknowledgement (paho-mqtt).

``Uplink`` (``gateway.uplink.client``) owns the MQTT session; ``Window``
(``gateway.uplink.window``) is the in-flight bookkeeping; settings in ``gateway.uplink.settings``.
"""

from gateway.uplink.client import Uplink
from gateway.uplink.settings import BrokerSettings, UplinkSettings, broker_password
from gateway.uplink.window import InFlight, Window

__all__ = [
    "BrokerSettings",
    "InFlight",
    "Uplink",
    "UplinkSettings",
    "Window",
    "broker_password",
]
