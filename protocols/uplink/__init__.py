"""The MQTT contract between gateway and head-end (version 1).  See docs/mqtt.md.

``topics``: the topic tree; ``messages``: the payload schemas (pydantic); ``codec``: bytes ⇄
messages (JSON, zlib-compressed where it pays) and conversion of records ⇄ the reading model;
``columns``: ``up/data`` decoded for a receiver that stores it (sweeps kept as column arrays).
Every decode failure raises ``protocols.ContractError`` with a reason fit for a dead-letter table.
"""

from protocols.uplink.codec import (
    decode,
    decode_message,
    encode,
    events_to_records,
    reading_record_to_readings,
    readings_to_records,
    record_to_event,
)
from protocols.uplink.messages import (
    Ack,
    ArchiveMeter,
    ArchivePush,
    Batch,
    Command,
    CommandAction,
    CommandResult,
    CommandState,
    EventRecord,
    GapRecord,
    ReadingRecord,
    ResendRequest,
    Signature,
    Status,
)
from protocols.uplink.topics import Topics, parse_topic

__all__ = [
    "Ack",
    "ArchiveMeter",
    "ArchivePush",
    "Batch",
    "Command",
    "CommandAction",
    "CommandResult",
    "CommandState",
    "EventRecord",
    "GapRecord",
    "ReadingRecord",
    "ResendRequest",
    "Signature",
    "Status",
    "Topics",
    "decode",
    "decode_message",
    "encode",
    "events_to_records",
    "parse_topic",
    "reading_record_to_readings",
    "readings_to_records",
    "record_to_event",
]
