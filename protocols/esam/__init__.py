"""The laboratory ESAM scheme shared by the head-end's software encryption service and the
simulator's software ESAM (NOT the utility's algorithm; see ``lab``)."""

from protocols.esam.lab import (
    LabCryptoError,
    LabKeyError,
    MeterKeys,
    Session,
    authentication_ciphertext,
    control_header,
    meter_keys,
    parse_master_key,
    reply_header,
    write_header,
)

__all__ = [
    "LabCryptoError",
    "LabKeyError",
    "MeterKeys",
    "Session",
    "authentication_ciphertext",
    "control_header",
    "meter_keys",
    "parse_master_key",
    "reply_header",
    "write_header",
]
