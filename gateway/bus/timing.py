"""Transaction timing on an RS-485 bus, derived from the line settings.

::

    |<- request on the wire ->|<-- response delay (20..500 ms) -->|<- reply on the wire ->|
    write                      end of request                      first byte              done
                               |<------------- response window ------------------------->|

A character takes ``bits_per_char / baud`` seconds (11 bits for 8E1).  The response window is
``response_timeout_ms`` when configured, else the 500 ms maximum DL/T 645 response delay plus the
longest expected reply's wire time.  A margin covers USB adapters and OS scheduling.  Between
transactions the bus stays silent for ``gap_ms`` (default 3.5 character times, the Modbus RTU
frame separator, harmless for DL/T 645).
"""

from __future__ import annotations

from dataclasses import dataclass

RESPONSE_DELAY_MAX = 0.5  # DL/T 645: 20 ms <= Td <= 500 ms
RESPONSE_DELAY_MIN = 0.02
MARGIN = 0.03  # USB-serial latency timers (16 ms), scheduling
TYPICAL_REQUEST = 20  # DL/T 645 read with preamble; a Modbus read request is 8
TYPICAL_REPLY = 48  # DL/T 645 frozen block (20 data bytes) with preamble


@dataclass(frozen=True, slots=True)
class LineTiming:
    """Timing of one bus's line settings."""

    baud: int
    bits_per_char: int
    response_timeout: float = 0.0  # configured window (s); 0 = derived
    gap: float = 0.0  # configured inter-frame gap (s); 0 = 3.5 characters

    @classmethod
    def of(
        cls, baud: int, bits_per_char: int, response_timeout_ms: float = 0, gap_ms: float = 0
    ) -> LineTiming:
        """The timing of plain line settings (times in milliseconds, 0 = derived)."""
        return cls(baud, bits_per_char, response_timeout_ms / 1000, gap_ms / 1000)

    @property
    def char_time(self) -> float:
        """Seconds per character on the wire."""
        return self.bits_per_char / self.baud

    def wire_time(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the wire."""
        return nbytes * self.char_time

    def inter_frame_gap(self) -> float:
        """Silence kept between the end of a reply and the next request."""
        return self.gap or 3.5 * self.char_time

    def response_window(self, reply_len: int) -> float:
        """Time allowed from the end of the request to the end of the reply."""
        if self.response_timeout:
            return self.response_timeout
        return RESPONSE_DELAY_MAX + self.wire_time(reply_len)

    def deadline(self, request_len: int, reply_len: int) -> float:
        """Seconds from the write until a missing or incomplete reply counts as a timeout."""
        return (
            self.wire_time(request_len)
            + self.response_window(reply_len)
            + MARGIN
            + 2 * self.char_time
        )

    def theoretical(self, request_len: int, reply_len: int, response_delay: float) -> float:
        """The least a transaction can take: both frames on the wire plus the meter's delay."""
        return self.wire_time(request_len + reply_len) + response_delay


def minimum_timeout_ms(timing: LineTiming) -> int:
    """The shortest ``response_timeout_ms`` a typical long reply fits in."""
    return int((RESPONSE_DELAY_MIN + timing.wire_time(TYPICAL_REPLY)) * 1000) + 1


def worst_case_sweep_seconds(timing: LineTiming, retries: int, meters: int) -> float:
    """An energy sweep of ``meters`` meters when every one is silent (all retries time out)."""
    per_try = timing.deadline(TYPICAL_REQUEST, TYPICAL_REPLY) + timing.inter_frame_gap()
    # a meter that times out is skipped for the rest of the sweep: one read with its retries
    return meters * (retries + 1) * per_try
