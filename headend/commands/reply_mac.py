"""The reply MAC of a secured step: proof that the meter's ESAM opened the frames it was sent.

The meter's 83H authentication reply and its 9CH/94H acknowledgements carry no MAC (DL/T 645-2007
grid extension; docs/dlt645.md §Security), so a gateway's word "executed" — or a forger holding a
broker identity, or a man in the middle on the RS-485 bus — could claim a control the meter never
accepted.  Each control or write step therefore ends with an ESAM data read-back (03H 078001FF) of
the file the meter decrypts sealed frames into; the ESAM answers the data with a MAC under the
session's keys that also covers how many sealed frames it accepted in the session.  The head-end's
encryption service verifies that MAC (``EncryptionService.verify_reply_mac``) before the step may
count as executed; any doubt fails the target with a reason starting ``reply_mac_``.
"""

from __future__ import annotations

from typing import Any

from headend.esam import Challenge, EncryptionError, EncryptionService, SessionInfo
from protocols.dlt645 import DI_READBACK, readback_identifier
from protocols.esam import reply_header
from protocols.uplink.secured import AuthenticateStep, ControlStep, StepReport, WriteStep

COMMAND_FILE = 0x0008  # the ESAM file a sealed frame's plaintext is decrypted into
CONTROL_PLAINTEXT = 8  # N1 N2 + valid-until YYMMDDhhmmss


def identifier(length: int) -> str:
    """The read-back identifier (hex) of the command file's first ``length`` bytes."""
    return readback_identifier(COMMAND_FILE, 0, length).hex().upper()


def session_info(address: str, auth: AuthenticateStep, report: StepReport) -> SessionInfo | None:
    """The session an accepted authentication opened (None without random number 2)."""
    if report.random2 is None or report.esam_serial is None:
        return None
    h = bytes.fromhex
    challenge = Challenge(address, h(auth.factor), h(auth.random1), h(auth.ciphertext1))
    return SessionInfo(challenge, h(report.random2), h(report.esam_serial))


def check(
    service: EncryptionService | None,
    session: SessionInfo | None,
    step: ControlStep | WriteStep,
    report: StepReport | None,
    n1: int | None,
) -> str | None:
    """Why the step's reply does not prove what the meter did (None: the MAC verifies).

    ``n1``: the control's action code, which the plaintext read back must start with.
    """
    if step.readback is None:
        return None  # a step stored before read-backs existed (upgrade): judged as before
    readback = report.readback if report is not None else None
    if readback is None:
        return "reply_mac_missing: the meter's data read-back (078001FF) did not come back"
    if readback.identifier != step.readback:
        return "reply_mac_invalid: the read-back answers another identifier"
    if session is None or service is None:
        return "reply_mac_unverified: the session or the encryption service is unknown"
    seq = 1 if isinstance(step, ControlStep) else len(step.writes)  # frames the ESAM accepted
    data = bytes.fromhex(readback.identifier + readback.data)
    header = reply_header(session.address, DI_READBACK)
    try:
        good = service.verify_reply_mac(session, seq, header, data, bytes.fromhex(readback.mac))
    except EncryptionError as exc:
        return f"reply_mac_unverified: encryption service: {exc}"
    if not good:
        return (
            "reply_mac_invalid: the meter's reply MAC does not verify "
            "(a tampered reply or a forged result)"
        )
    plain = bytes.fromhex(readback.data)
    if n1 is not None and plain[:2] != bytes((n1, 0)):
        return "reply_mac_invalid: the meter's ESAM opened another command"
    return None


def detail_of(report: StepReport | None) -> dict[str, Any]:
    """What the audit log keeps of a refused read-back (no key material, only the wire)."""
    if report is None or report.readback is None:
        return {}
    return {"readback": report.readback.model_dump(mode="json")}
