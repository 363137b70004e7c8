"""Whether the gateway may trust its own clock.

Pi-class boards have no battery-backed clock: after a power cut they boot at the last saved time
(fake-hwclock) or 1970 until NTP answers.  Until the clock is trusted:

* readings carry the flag ``clock_unsynced`` (``ClockTrust.flags()``),
* no broadcast time sync is sent to meters (``gateway.clock.sync``),
* relay and time-sync commands are refused with rule ``clock_unsynced`` (``gateway.commands``).

Sources, asked in order; the first that answers decides:

1. ``timedatectl show -p NTPSynchronized --value`` (systemd-timesyncd, chrony, ntpd all set it);
2. the kernel: ``adjtimex(2)`` read-only (``modes = 0``); unsynchronised when the status has
   ``STA_UNSYNC`` or the call returns ``TIME_ERROR``;
3. the head-end's time, when the setting ``accept_headend_time`` is on: a trusted message's
   timestamp that agrees with the system clock within ``headend_tolerance_s`` marks the clock
   trusted for ``headend_valid_s`` (the gateway cannot set its clock unprivileged; it only
   accepts that it is right).

Answers are cached for ``cache_s`` seconds (``timedatectl`` forks a process).  Every source is
injectable for tests.  Once trusted, losing sync (NTP unreachable for a long time) makes the clock
untrusted again: the kernel raises ``STA_UNSYNC`` when its error estimate grows past 16 s.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from protocols.model import Flag
from taiqu.clock import Clock

log = logging.getLogger(__name__)

STA_UNSYNC = 0x0040
TIME_ERROR = 5

Source = Callable[[], bool | None]
"""A clock-sync source: True synced, False not, None cannot tell (try the next)."""


def timedatectl_source(timeout_s: float = 2.0) -> bool | None:
    """NTP synchronisation as systemd reports it; ``None`` without systemd."""
    exe = shutil.which("timedatectl")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip().lower()
    if out.returncode != 0 or value not in ("yes", "no"):
        return None  # no system bus (containers), or an unexpected answer
    return value == "yes"


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _Timex(ctypes.Structure):
    """``struct timex`` of linux/timex.h (glibc layout)."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    )


def kernel_source() -> bool | None:
    """The kernel's NTP state via ``adjtimex`` (read-only); ``None`` off Linux/glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return None
    tx = _Timex()
    tx.modes = 0
    state = adjtimex(ctypes.byref(tx))
    if state < 0:
        return None
    return not (tx.status & STA_UNSYNC) and state != TIME_ERROR


class ClockTrust:
    """``synced()``: whether the system clock may be trusted now (see module docstring)."""

    def __init__(
        self,
        sources: Sequence[Source] = (timedatectl_source, kernel_source),
        *,
        accept_headend_time: bool = False,
        headend_tolerance_s: float = 30.0,
        headend_valid_s: float = 6 * 3600.0,
        cache_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.sources = tuple(sources)
        self.accept_headend_time = accept_headend_time
        self.headend_tolerance_s = headend_tolerance_s
        self.headend_valid_s = headend_valid_s
        self.cache_s = cache_s
        self._monotonic = monotonic
        self._now = now
        self._cached: tuple[float, bool] | None = None
        self._headend_until: float | None = None
        self._last: bool | None = None
        self.source = "none"  # which source decided last (for the status message)

    def synced(self) -> bool:
        """Whether the clock is trusted now."""
        mono = self._monotonic()
        if self._headend_until is not None and mono < self._headend_until:
            return self._report(True, "headend")
        if self._cached is not None and mono - self._cached[0] < self.cache_s:
            return self._cached[1]
        decided, source = False, "none"
        for src in self.sources:
            answer = src()
            if answer is not None:
                decided, source = answer, getattr(src, "__name__", "source")
                break
        self._cached = (mono, decided)
        return self._report(decided, source)

    def _report(self, value: bool, source: str) -> bool:
        if value != self._last:
            log.log(
                logging.INFO if value else logging.WARNING,
                "gateway clock %s (%s)",
                "synchronised" if value else "NOT synchronised: readings flagged clock_unsynced",
                source,
            )
        self._last, self.source = value, source
        return value

    def headend_time(self, headend: datetime) -> bool:
        """Offer the head-end's time; True if it was accepted (setting on and clocks agree)."""
        if not self.accept_headend_time:
            return False
        if headend.tzinfo is None:
            raise ValueError("the head-end time must be timezone-aware")
        offset = headend.timestamp() - self._now()
        if abs(offset) > self.headend_tolerance_s:
            log.warning("head-end time differs from ours by %.0f s: not accepted", offset)
            return False
        self._headend_until = self._monotonic() + self.headend_valid_s
        return True

    def invalidate(self) -> None:
        """Forget the cached answer (e.g. after the system reported a clock step)."""
        self._cached = None

    def flags(self) -> frozenset[str]:
        """Flags for readings taken now: ``{clock_unsynced}`` until the clock is trusted."""
        return frozenset() if self.synced() else frozenset({Flag.CLOCK_UNSYNCED.value})


def fixed(value: bool | None) -> Source:
    """A source that always answers ``value`` (tests, or ``--assume-clock-synced``)."""

    def source() -> bool | None:
        return value

    source.__name__ = f"fixed_{value}"
    return source


def make_clock_trust(source: str, headend_tolerance_s: float, clock: Clock) -> ClockTrust:
    """The clock trust ``[clock_trust]`` asks for (``GatewayConfig.clock_trust_source``);
    head-end times are compared with ``clock``."""
    now = lambda: clock.now().timestamp()  # noqa: E731
    if source in ("trusted", "untrusted"):
        return ClockTrust([fixed(source == "trusted")], now=now)
    return ClockTrust(
        accept_headend_time=source == "headend",
        headend_tolerance_s=headend_tolerance_s,
        now=now,
    )
