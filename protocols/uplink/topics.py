"""The topic tree.  The gateway id is also its MQTT client id and broker username, so a broker ACL
(``pattern write taiqu/v1/%u/up/#``, ``pattern read taiqu/v1/%u/down/#``) confines each gateway::

    taiqu/v1/{gw}/up/data        gateway → head-end  readings/events batches (zlib JSON)   QoS 1
    taiqu/v1/{gw}/up/status      gateway → head-end  birth / last will (retained)           QoS 1
    taiqu/v1/{gw}/up/result      gateway → head-end  command lifecycle results              QoS 1
    taiqu/v1/{gw}/down/cmd       head-end → gateway  commands                               QoS 1
    taiqu/v1/{gw}/down/ack       head-end → gateway  "stored up to seq N of epoch E"        QoS 1
    taiqu/v1/{gw}/down/resend    head-end → gateway  re-send a seq range                    QoS 1
    taiqu/v1/{gw}/down/archive   head-end → gateway  meter archive (retained)               QoS 1
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from protocols.errors import ContractError

ROOT = "taiqu/v1"
GATEWAY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
UP_KINDS = ("data", "status", "result")
DOWN_KINDS = ("cmd", "ack", "resend", "archive")


@dataclass(frozen=True)
class Topics:
    """All topics of one gateway."""

    gateway: str

    def __post_init__(self) -> None:
        if not GATEWAY_ID.match(self.gateway):
            raise ValueError(
                f"gateway id {self.gateway!r} must be 1-64 letters, digits, '_' or '-'"
            )

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.gateway}"

    @property
    def data(self) -> str:
        return f"{self.base}/up/data"

    @property
    def status(self) -> str:
        return f"{self.base}/up/status"

    @property
    def result(self) -> str:
        return f"{self.base}/up/result"

    @property
    def cmd(self) -> str:
        return f"{self.base}/down/cmd"

    @property
    def ack(self) -> str:
        return f"{self.base}/down/ack"

    @property
    def resend(self) -> str:
        return f"{self.base}/down/resend"

    @property
    def archive(self) -> str:
        return f"{self.base}/down/archive"

    @property
    def down(self) -> str:
        """Wildcard a gateway subscribes to."""
        return f"{self.base}/down/#"


# What the head-end subscribes to (optionally behind a shared subscription ``$share/G/…``).
HEADEND_UP = f"{ROOT}/+/up/#"


def parse_topic(topic: str) -> tuple[str, str, str]:
    """Split a contract topic into (gateway id, direction 'up'|'down', kind)."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT:
        raise ContractError(f"topic {topic!r} is not under {ROOT}/{{gateway}}/up|down/…")
    _, _, gateway, direction, kind = parts
    if not GATEWAY_ID.match(gateway):
        raise ContractError(f"topic {topic!r}: invalid gateway id")
    allowed = UP_KINDS if direction == "up" else DOWN_KINDS if direction == "down" else ()
    if kind not in allowed:
        raise ContractError(f"topic {topic!r}: unknown {direction or 'direction'} kind {kind!r}")
    return gateway, direction, kind
