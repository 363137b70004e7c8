"""Payload schemas of contract version 1 (pydantic models; short aliases keep batches small).

Every payload carries ``"v": 1``.  A batch carries the gateway's store ``epoch`` (a random id
created with its local store, so a re-flashed gateway is a new stream) and ``seq``, the sequence
number of its first record; record *i* has ``seq + i``, so sequence numbers are gap-free.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from protocols.model import EventType, ReadingKind
from protocols.quantities import is_known

VERSION: Literal[1] = 1
MeterId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9:_.-]+$")]
Epoch = Annotated[str, Field(min_length=8, max_length=32, pattern=r"^[0-9a-f]+$")]
Seq = Annotated[int, Field(ge=0, le=2**63 - 1)]


def _empty(value: object) -> bool:
    """Defaults left off the wire (empty flags and details, ``resend=false``): smaller batches."""
    return not value


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    v: Literal[1] = VERSION


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ReadingRecord(_Rec):
    """A meter's register values read in one go (one meter, one time, one kind)."""

    r: Literal["rd"] = "rd"
    meter: MeterId = Field(alias="m")
    kind: ReadingKind = Field(alias="k")
    gateway_time: AwareDatetime = Field(alias="gt")
    meter_time: AwareDatetime | None = Field(default=None, alias="mt")
    freeze_time: AwareDatetime | None = Field(default=None, alias="ft")
    flags: tuple[str, ...] = Field(default=(), alias="fl", exclude_if=_empty)
    command: str | None = Field(default=None, alias="c", max_length=64)
    values: dict[str, str | int] = Field(alias="q", min_length=1)

    @field_validator("values")
    @classmethod
    def _known_quantities(cls, values: dict[str, str | int]) -> dict[str, str | int]:
        unknown = [name for name in values if not is_known(name)]
        if unknown:
            raise ValueError(f"unknown quantities {unknown}")
        return values


class EventRecord(_Rec):
    """One event, with the meter's own times."""

    r: Literal["ev"] = "ev"
    meter: str = Field(alias="m", max_length=32)  # empty for gateway-level events
    type: EventType = Field(alias="t")
    start: AwareDatetime | None = Field(default=None, alias="s")
    end: AwareDatetime | None = Field(default=None, alias="e")
    detected: AwareDatetime | None = Field(default=None, alias="d")
    details: dict[str, Any] = Field(default_factory=dict, alias="x", exclude_if=_empty)


class GapRecord(_Rec):
    """The gateway dropped records ``first``…``last`` of this epoch before their acknowledgement."""

    r: Literal["gap"] = "gap"
    first: Seq
    last: Seq
    reason: str = Field(max_length=200)
    readings: int = Field(default=0, ge=0)  # how many readings the dropped records held
    events: int = Field(default=0, ge=0)


Record = Annotated[ReadingRecord | EventRecord | GapRecord, Field(discriminator="r")]


class Batch(_Msg):
    """``up/data``: records with consecutive sequence numbers starting at ``seq``."""

    gateway: str = Field(alias="gw", max_length=64)
    epoch: Epoch
    seq: Seq
    sent: AwareDatetime
    records: tuple[Record, ...] = Field(min_length=1, max_length=100_000)
    resend: bool = Field(default=False, exclude_if=_empty)  # true when re-sent on request

    @property
    def last_seq(self) -> int:
        return self.seq + len(self.records) - 1


class Status(_Msg):
    """``up/status`` (retained): the birth message, periodic health, or the last will."""

    gateway: str = Field(alias="gw", max_length=64)
    state: Literal["online", "offline"]
    time: AwareDatetime | None = None  # absent in the last will (it is written at connect time)
    software: str | None = None
    config_hash: str | None = None
    archive_version: int | None = None
    epoch: Epoch | None = None
    clock_synced: bool | None = None
    health: dict[str, Any] = Field(default_factory=dict)


class CommandAction(StrEnum):
    """What a command asks the gateway to do."""

    READ = "read"  # params: quantities or identifiers, frozen date range
    BACKFILL = "backfill"  # params: from, to (dates): daily frozen values
    RELAY_TRIP = "relay_trip"
    RELAY_CLOSE_ALLOWED = "relay_close_allowed"
    RELAY_CLOSE_DIRECT = "relay_close_direct"
    ALARM = "alarm"
    ALARM_RELEASE = "alarm_release"
    KEEP_POWER_ON = "keep_power_on"
    KEEP_POWER_OFF = "keep_power_off"
    TIME_SYNC = "time_sync"
    ARCHIVE_UPDATE = "archive_update"


class Signature(BaseModel):
    """The head-end's Ed25519 signature over a message's ``signing_bytes()`` (commands and
    archive pushes; ``protocols.uplink.signatures`` verifies it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alg: Literal["ed25519"] = "ed25519"
    key_id: str = Field(max_length=64)
    value: str = Field(max_length=256)  # base64


class Command(_Msg):
    """``down/cmd``: one command to one gateway, for one meter, a list, or all (``meters=None``)."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    gateway: str = Field(alias="gw", max_length=64)
    meters: tuple[MeterId, ...] | None = None
    action: CommandAction
    params: dict[str, Any] = Field(default_factory=dict)
    issued: AwareDatetime
    valid_until: AwareDatetime
    nonce: str = Field(min_length=8, max_length=64)
    signature: Signature | None = None

    def signing_bytes(self) -> bytes:
        """The canonical bytes a signature covers (everything but the signature)."""
        import json

        body = self.model_dump(mode="json", by_alias=True, exclude={"signature"})
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def expired(self, now: datetime) -> bool:
        return now >= self.valid_until


class CommandState(StrEnum):
    """A command's lifecycle as the gateway reports it."""

    RECEIVED = "received"
    EXECUTING = "executing"
    EXECUTED = "executed"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUSED = "refused"
    ARMED = "armed"  # close allowed: waiting for the customer's button press

    @property
    def final(self) -> bool:
        return self in {self.EXECUTED, self.FAILED, self.EXPIRED, self.REFUSED}


class CommandResult(_Msg):
    """``up/result``: a step of a command's lifecycle (per meter where it concerns one)."""

    id: str = Field(min_length=1, max_length=64)
    gateway: str = Field(alias="gw", max_length=64)
    state: CommandState
    at: AwareDatetime
    meter: str | None = None
    reason: str | None = Field(default=None, max_length=500)
    detail: dict[str, Any] = Field(default_factory=dict)


class Ack(_Msg):
    """``down/ack``: every record of ``epoch`` up to ``upto`` (inclusive) is stored."""

    epoch: Epoch
    upto: Seq
    ranges: tuple[tuple[Seq, Seq], ...] = Field(default=(), exclude_if=_empty)  # beyond a hole


class ResendRequest(_Msg):
    """``down/resend``: please send records ``first``…``last`` of ``epoch`` again."""

    epoch: Epoch
    first: Seq
    last: Seq


class ArchiveMeter(BaseModel):
    """One meter of a gateway's archive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: MeterId
    bus: str = Field(max_length=64)
    protocol: Literal["dlt645-2007", "dlt645-1997", "dlt698", "modbus"]
    address: str = Field(max_length=32)  # DL/T 645 12 digits, or the Modbus unit id
    model: str | None = None
    role: Literal["customer", "area_total"] = "customer"
    # the meter's own line settings when they differ from its bus's, e.g. "1200 8E1"
    line: str | None = Field(default=None, max_length=16, pattern=r"^\d{3,6} [78][NEO][12]$")


ARCHIVE_DOMAIN = b"taiqu-archive-v1\n"


class ArchivePush(_Msg):
    """``down/archive`` (retained): the versioned meter archive for one gateway.

    ``signature`` (optional on the wire, additive to contract v1): the head-end's Ed25519
    signature over ``signing_bytes()`` with the key valid at ``issued``, as for commands.
    """

    gateway: str = Field(alias="gw", max_length=64)
    version: int = Field(ge=0)
    issued: AwareDatetime
    meters: tuple[ArchiveMeter, ...]
    signature: Signature | None = None

    def signing_bytes(self) -> bytes:
        """What a signature covers: a domain tag, then the canonical JSON of everything but the
        signature (the tag keeps an archive signature from ever verifying as a command's)."""
        import json

        body = self.model_dump(mode="json", by_alias=True, exclude={"signature"})
        return ARCHIVE_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
