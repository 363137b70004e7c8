"""The seam where the utility's encryption service secures 698.45 exchanges (SECURITY APDUs).

A secured request is a SECURITY-Request carrying the plaintext APDU and its verification
information; the meter answers with a SECURITY-Response carrying the plaintext response and a
MAC over it (DL/T 698.45-2017 clause 7.2.12, "安全传输").  The MACs come from the utility's
encryption machine (client side) and the meter's ESAM (server side); their keys and algorithm
are the utility's, so Taiqu invents none: a deployment plugs its service in as a
``SecurityService`` and the simulator's meters take a ``ServerSecurity``.

``LabMac`` is the laboratory implementation of both seams for tests, the simulator and demos:
an HMAC-SHA256 truncated to the 4-byte MAC size, keyed per meter from a laboratory master key.
It is NOT the State Grid ESAM scheme and never talks to a real meter; its only job is to let the
whole secured flow (wrap, MAC, verify, refuse a bad MAC) run end to end.  Ciphertext
application data (``encrypted``) is not implemented: such a response raises
``Dlt698SecurityError``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Protocol

from protocols.dlt698.apdu import SecurityRequest, SecurityResponse, Tag, Verification
from protocols.dlt698.errors import Dlt698SecurityError

MAC_SIZE = 4
RN_SIZE = 16


class SecurityService(Protocol):
    """Client side: wraps a request APDU and checks the meter's MAC on the response."""

    def wrap(self, server: str, apdu: bytes) -> SecurityRequest:
        """The SECURITY-Request carrying plaintext ``apdu`` for meter ``server``."""
        ...

    def unwrap(self, server: str, request: SecurityRequest, response: SecurityResponse) -> bytes:
        """The verified plaintext response APDU; ``Dlt698SecurityError`` if it does not verify."""
        ...


class ServerSecurity(Protocol):
    """Meter side (the ESAM): checks a secured request and MACs the response."""

    def open(self, server: str, request: SecurityRequest) -> bytes:
        """The plaintext request APDU; ``Dlt698SecurityError`` if its MAC does not verify."""
        ...

    def seal(self, server: str, request: SecurityRequest, apdu: bytes) -> SecurityResponse:
        """The SECURITY-Response carrying plaintext ``apdu``."""
        ...


class LabMac:
    """Laboratory MACs for both sides (see the module docstring: not a utility scheme)."""

    def __init__(
        self, master_key: bytes, random: Callable[[int], bytes] = os.urandom, sid: int = 0x81000000
    ) -> None:
        if len(master_key) < 16:
            raise ValueError("the laboratory master key needs at least 16 bytes")
        self._master = master_key
        self._random = random
        self.sid = sid

    def __repr__(self) -> str:  # keys never reach a log
        return "LabMac(<key>)"

    def _mac(self, server: str, challenge: bytes, apdu: bytes) -> bytes:
        key = hmac.new(self._master, server.upper().encode(), hashlib.sha256).digest()
        return hmac.new(key, challenge + apdu, hashlib.sha256).digest()[:MAC_SIZE]

    # -- client side ---------------------------------------------------------------------------
    def wrap(self, server: str, apdu: bytes) -> SecurityRequest:
        """Reads ask for a MAC'd answer (plaintext + RN); writes and actions carry a MAC."""
        if apdu[:1] == bytes((Tag.GET_REQUEST,)):
            return SecurityRequest(apdu, Verification.RN, rn=self._random(RN_SIZE))
        sid = self.sid.to_bytes(4, "big")
        mac = self._mac(server, sid, apdu)
        return SecurityRequest(apdu, Verification.SID_MAC, mac=mac, sid=self.sid)

    def unwrap(self, server: str, request: SecurityRequest, response: SecurityResponse) -> bytes:
        """Check the response MAC against the request's challenge."""
        if response.dar is not None:
            raise Dlt698SecurityError(f"the meter refused the secured request (DAR {response.dar})")
        if response.encrypted:
            raise Dlt698SecurityError("ciphertext responses need the utility's service")
        if response.mac is None:
            raise Dlt698SecurityError("secured response without a MAC")
        expected = self._mac(server, _challenge(request), response.apdu)
        if not hmac.compare_digest(expected, response.mac):
            raise Dlt698SecurityError("the response MAC does not verify")
        return response.apdu

    # -- meter side ----------------------------------------------------------------------------
    def open(self, server: str, request: SecurityRequest) -> bytes:
        """Verify a request MAC (SID_MAC, RN_MAC); plaintext + RN needs none."""
        if request.encrypted:
            raise Dlt698SecurityError("ciphertext requests need the utility's service")
        if request.verification in (Verification.SID_MAC, Verification.RN_MAC):
            prefix = (
                request.sid.to_bytes(4, "big")
                if request.verification is Verification.SID_MAC
                else request.rn
            )
            expected = self._mac(server, prefix, request.apdu)
            if not hmac.compare_digest(expected, request.mac):
                raise Dlt698SecurityError("the request MAC does not verify")
        return request.apdu

    def seal(self, server: str, request: SecurityRequest, apdu: bytes) -> SecurityResponse:
        """Plaintext response + MAC over the request's challenge and the response."""
        return SecurityResponse(apdu, self._mac(server, _challenge(request), apdu))


def _challenge(request: SecurityRequest) -> bytes:
    """What binds a response MAC to its request: the RN, else the request MAC."""
    return request.rn or request.mac
