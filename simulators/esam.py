"""A software ESAM for simulated cost-control meters (the "Y" meters' security chip).

It implements Taiqu's laboratory scheme (``protocols.esam``, the same diversification as the
head-end's software encryption service) with the behaviour of a field meter's ESAM, as the meter
firmware in docs/dlt645.md §Security shows it:

- plaintext 1CH is refused (password error / unauthorised) unless the meter is in factory mode;
- 03H identity authentication (070000FF) checks ciphertext 1 against random number 1 under the
  meter's diversified key; success opens a session for ``window`` seconds (5 minutes by default),
  draws random number 2 and returns it with the ESAM serial; failure answers the security error
  word (authentication failed);
- in a session, 1CH level 98 and 14H levels 98/99 must carry a valid MAC (and ciphertext) for the
  session's next sequence number: a forged MAC, a replayed frame or another session's frame fails;
  every third MAC failure closes the session;
- the plaintext of the last sealed frame it opened (a 1CH block's N1 N2 + valid-until, a
  protected write's value) is kept in its control-command file (08, as the meter firmware in
  docs/dlt645.md decrypts 1CH through that file); a data read-back (078001FF) in the session
  returns the requested bytes with a MAC over them and the session's count of accepted frames;
- expired or invalidated (070002FF) sessions refuse secured frames;
- failed authentications and MAC failures count per meter-local day; at ``max_failures`` the ESAM
  locks (authentication refused) until the date changes;
- ``log`` keeps ground truth: every secured request, accepted or refused, and why.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from protocols.dlt645 import (
    DI_INVALIDATE,
    DI_READBACK,
    LEVEL_MAC,
    AbnormalReply,
    Authenticate,
    Authenticated,
    ControlAck,
    ControlAction,
    Function,
    InvalidateAuthentication,
    ReadBack,
    ReadBackData,
    RemoteControl,
    Reply,
    Request,
    SecuredControl,
    SecuredWrite,
    SecurityReply,
    SetAuthenticationValidity,
    Version,
    WriteAck,
    WriteData,
    error_byte,
    factor_of,
    find_data_id,
    security_word,
)
from protocols.dlt645.security import DI_AUTH_VALIDITY, first_class
from protocols.esam import (
    LabCryptoError,
    LabKeyError,
    Session,
    authentication_ciphertext,
    control_header,
    meter_keys,
    parse_master_key,
    reply_header,
    write_header,
)
from simulators.errors import SimConfigError
from simulators.meter import Control, Meter, Outcome

_ACTIONS = {
    ControlAction.TRIP: Control.TRIP,
    ControlAction.CLOSE_ALLOWED: Control.CLOSE_ALLOWED,
    ControlAction.CLOSE_DIRECT: Control.CLOSE,
    ControlAction.ALARM: Control.ALARM,
    ControlAction.ALARM_RELEASE: Control.ALARM_RELEASE,
    ControlAction.KEEP_POWER: Control.KEEP_POWER,
    ControlAction.KEEP_POWER_RELEASE: Control.KEEP_POWER_RELEASE,
}
_UNAUTHORISED = error_byte(("password_error_or_unauthorised",))
_OTHER = error_byte(("other_error",))
COMMAND_FILE = 0x0008  # the ESAM file a sealed frame's plaintext is decrypted into
V7 = Version.V2007


def read_master_key(path: Path) -> bytes:
    """The laboratory master key in ``path`` (32 hex digits, mode 0600, as the head-end's
    ``taiqu headend esam-lab-key`` writes it); ``SimConfigError`` names what is wrong."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise SimConfigError(f"esam.key_file {path}: {exc.strerror}") from None
    try:
        return parse_master_key(text, mode, str(path))
    except LabKeyError as exc:
        raise SimConfigError(f"esam.key_file {path} {exc}") from None


@dataclass(frozen=True)
class EsamEvent:
    """One line of the ESAM's ground truth."""

    ts: float
    kind: str  # authenticate | control | write | invalidate | plaintext_control
    accepted: bool
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Open:
    session: Session
    random1: bytes
    until: float
    seq: int = 0
    mac_failures: int = 0


@dataclass
class SoftwareEsam:
    """The ESAM of one meter (see the module docstring)."""

    master_key: bytes
    address: str
    window: float = 300.0
    max_failures: int = 15
    factory_mode: bool = False
    random: Callable[[int], bytes] = secrets.token_bytes
    log: list[EsamEvent] = field(default_factory=list)
    _open: _Open | None = field(default=None, init=False, repr=False)
    _failures: tuple[date, int] | None = field(default=None, init=False, repr=False)
    _files: dict[int, bytes] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.keys = meter_keys(self.master_key, factor_of(self.address))
        self.serial = bytes.fromhex("ED00" + self.address)

    # -- state ----------------------------------------------------------------------------------
    def session_open(self, ts: float) -> bool:
        """Whether a session is open at ``ts``."""
        return self._open is not None and ts < self._open.until

    def failures(self, meter: Meter, ts: float) -> int:
        """Failures counted on the meter's local day of ``ts``."""
        if self._failures is None or self._failures[0] != meter.local_date(ts):
            return 0
        return self._failures[1]

    def locked(self, meter: Meter, ts: float) -> bool:
        """Whether authentication is locked for the rest of the meter's day."""
        return self.failures(meter, ts) >= self.max_failures

    def _fail(self, meter: Meter, ts: float) -> None:
        self._failures = (meter.local_date(ts), self.failures(meter, ts) + 1)

    def _note(self, ts: float, kind: str, ok: bool, reason: str = "", **detail: Any) -> None:
        self.log.append(EsamEvent(ts, kind, ok, reason, detail))

    # -- requests -------------------------------------------------------------------------------
    def reply(self, meter: Meter, request: Request, ts: float) -> Reply | None:
        """The ESAM's answer to ``request``, or None when the plain firmware handles it."""
        if isinstance(request, Authenticate):
            return self._authenticate(meter, request, ts)
        if isinstance(request, InvalidateAuthentication):
            self._open = None
            self._note(ts, "invalidate", True)
            return SecurityReply(meter.address, DI_INVALIDATE, bytes(18), V7)
        if isinstance(request, SetAuthenticationValidity):
            return self._validity(meter, request, ts)
        if isinstance(request, SecuredControl):
            return self._control(meter, request, ts)
        if isinstance(request, SecuredWrite):
            return self._write(meter, request, ts)
        if isinstance(request, ReadBack):
            return self._read_back(meter, request, ts)
        if isinstance(request, RemoteControl | WriteData) and not self.factory_mode:
            kind = "plaintext_control" if isinstance(request, RemoteControl) else "plaintext_write"
            self._note(ts, kind, False, "plaintext refused outside factory mode")
            function = Function.REMOTE_CONTROL if kind == "plaintext_control" else Function.WRITE
            return AbnormalReply(meter.address, function, _UNAUTHORISED, (), V7)
        return None

    def _security_error(self, meter: Meter, reason: str) -> Reply:
        return AbnormalReply(meter.address, Function.SECURITY, security_word((reason,)), (), V7)

    def _authenticate(self, meter: Meter, request: Authenticate, ts: float) -> Reply:
        if self.locked(meter, ts):
            self._note(ts, "authenticate", False, "locked")
            return self._security_error(meter, "authentication_failed")
        expected = authentication_ciphertext(self.keys, request.random1)
        if request.factor != self.keys.factor or request.ciphertext1 != expected:
            self._fail(meter, ts)
            self._open = None
            self._note(ts, "authenticate", False, "ciphertext 1 does not verify")
            return self._security_error(meter, "authentication_failed")
        random2 = self.random(4)
        session = Session.derive(self.keys, request.random1, random2, self.serial)
        self._open = _Open(session, request.random1, ts + self.window)
        self._note(ts, "authenticate", True, random2=random2.hex())
        return Authenticated(meter.address, random2, self.serial, V7)

    def _session(self, ts: float) -> _Open | None:
        if self._open is not None and ts >= self._open.until:
            self._open = None  # the validity window has passed
        return self._open

    def _mac_failed(self, meter: Meter, ts: float, kind: str, function: Function) -> Reply:
        self._fail(meter, ts)
        state = self._open
        if state is not None:
            state.mac_failures += 1
            if state.mac_failures % 3 == 0:
                self._open = None
        self._note(ts, kind, False, "MAC does not verify")
        return AbnormalReply(meter.address, function, _UNAUTHORISED, (), V7)

    def _validity(self, meter: Meter, request: SetAuthenticationValidity, ts: float) -> Reply:
        state = self._session(ts)
        if state is None:
            self._note(ts, "validity", False, "no authenticated session")
            return self._security_error(meter, "authentication_failed")
        value = bytes.fromhex(f"{request.minutes:04d}")
        try:
            header = write_header(meter.address, DI_AUTH_VALIDITY)
            state.session.verify(state.seq, header, value, request.mac)
        except LabCryptoError:
            self._mac_failed(meter, ts, "validity", Function.SECURITY)
            return self._security_error(meter, "esam_verification_failed")
        state.seq += 1
        self.window = request.minutes * 60.0
        state.until = ts + self.window  # the session timer restarts with the new validity
        self._note(ts, "validity", True, minutes=request.minutes)
        return SecurityReply(meter.address, DI_AUTH_VALIDITY, b"", V7)

    def _control(self, meter: Meter, request: SecuredControl, ts: float) -> Reply:
        state = self._session(ts)
        if state is None:
            self._note(ts, "control", False, "no authenticated session")
            return AbnormalReply(meter.address, Function.REMOTE_CONTROL, _UNAUTHORISED, (), V7)
        header = control_header(meter.address)
        try:
            plain = state.session.open(state.seq, header, request.sealed)
        except LabCryptoError:
            return self._mac_failed(meter, ts, "control", Function.REMOTE_CONTROL)
        state.seq += 1
        self._files[COMMAND_FILE] = plain
        try:
            action = ControlAction(plain[0])
            until = datetime.strptime(plain[2:8].hex(), "%y%m%d%H%M%S")
        except ValueError:
            self._note(ts, "control", False, "plaintext is not N1 N2 + valid-until")
            return AbnormalReply(meter.address, Function.REMOTE_CONTROL, _OTHER, (), V7)
        outcome = meter.control(ts, _ACTIONS[action], until)
        ok = outcome is Outcome.OK
        self._note(ts, "control", ok, "" if ok else outcome.value, action=action.name)
        if ok:
            return ControlAck(meter.address, V7)
        return AbnormalReply(meter.address, Function.REMOTE_CONTROL, _OTHER, (), V7)

    def _write(self, meter: Meter, request: SecuredWrite, ts: float) -> Reply:
        state = self._session(ts)
        if state is None:
            self._note(ts, "write", False, "no authenticated session", di=f"{request.di:08X}")
            return AbnormalReply(meter.address, Function.WRITE, _UNAUTHORISED, (), V7)
        header = write_header(meter.address, request.di)
        level = int(request.password[:2], 16)
        if (level == LEVEL_MAC) != first_class(request.di):
            self._note(ts, "write", False, "wrong level for this parameter", di=f"{request.di:08X}")
            return AbnormalReply(meter.address, Function.WRITE, _UNAUTHORISED, (), V7)
        try:
            if level == LEVEL_MAC:
                value = request.payload[:-4]
                state.session.verify(state.seq, header, value, request.payload[-4:])
            else:
                value = state.session.open(state.seq, header, request.payload)
        except LabCryptoError:
            return self._mac_failed(meter, ts, "write", Function.WRITE)
        state.seq += 1
        self._files[COMMAND_FILE] = value
        if not self._apply(meter, request.di, value, ts):
            self._note(ts, "write", False, "identifier not writable", di=f"{request.di:08X}")
            return AbnormalReply(meter.address, Function.WRITE, _UNAUTHORISED, (), V7)
        self._note(ts, "write", True, di=f"{request.di:08X}", value=value.hex())
        return WriteAck(meter.address, V7)

    def _read_back(self, meter: Meter, request: ReadBack, ts: float) -> Reply:
        state = self._session(ts)
        if state is None:
            self._note(ts, "readback", False, "no authenticated session")
            return self._security_error(meter, "authentication_failed")
        ident = request.identifier
        file, start, length = (int.from_bytes(ident[n : n + 2], "big") for n in (2, 4, 6))
        content = self._files.get(file, b"")
        if start + length > len(content):
            self._note(ts, "readback", False, "no such data", file=file)
            return self._security_error(meter, "other_error")
        data = content[start : start + length]
        header = reply_header(meter.address, DI_READBACK)
        mac = state.session.mac_of(state.seq, header, ident + data)
        self._note(ts, "readback", True, file=file, data=data.hex(), seq=state.seq)
        return ReadBackData(meter.address, ident, data, mac, V7)

    @staticmethod
    def _apply(meter: Meter, di: int, raw: bytes, ts: float) -> bool:
        row = find_data_id(di, V7)
        if row is None or not row.valid_length(len(raw)):
            return False
        value = row.layout.decode(raw, meter.spec.zone)
        now = meter.meter_time(ts)
        if row.key == "meter.date" and isinstance(value, date):
            meter.set_time(ts, datetime.combine(value, now.time()))
        elif row.key == "meter.time" and isinstance(value, time):
            meter.set_time(ts, datetime.combine(now.date(), value))
        else:
            return False
        return True
