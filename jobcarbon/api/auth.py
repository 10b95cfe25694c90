"""Who is calling: users by MUNGE credential, admins by bearer token.

A user's credential travels in the ``X-Munge-Credential`` header and is decoded by the
site's munged (``socket`` in settings) through libmunge (pymunge), or the ``unmunge``
binary when libmunge cannot be loaded. munged itself rejects forged, expired and replayed
credentials; the API then requires the credential's uid to be the uid of the user asked
about.
"""

from __future__ import annotations

import hmac
import pwd
import re
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

#: A MUNGE credential: "MUNGE:" + base64 + ":" (a few hundred bytes in practice).
_CRED_RE: Final = re.compile(r"MUNGE:[A-Za-z0-9+/]+={0,2}:")
MAX_CREDENTIAL_BYTES: Final = 4096

# libmunge error codes (munge.h) that mean "not a valid credential from this realm".
_REASONS: Final = {
    8: "bad credential format",
    9: "bad credential version",
    10: "bad credential cipher",
    11: "bad credential MAC",
    12: "bad credential compression",
    13: "bad credential realm",
    14: "credential invalid (forged or from another realm)",
    15: "credential expired",
    16: "credential created in the future",
    17: "credential replayed",
    18: "credential decode unauthorized",
}


class AuthError(Exception):
    """Authentication failed: ``status`` is the HTTP status, ``reason`` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller."""

    uid: int
    gid: int


def _check_format(credential: str) -> None:
    if len(credential) > MAX_CREDENTIAL_BYTES:
        raise AuthError(400, f"MUNGE credential longer than {MAX_CREDENTIAL_BYTES} bytes")
    if not _CRED_RE.fullmatch(credential):
        raise AuthError(401, "MUNGE credential is malformed")


class MungeVerifier:
    """Decodes credentials against one munged socket."""

    def __init__(self, socket: str) -> None:
        self.socket = socket
        try:
            import pymunge

            pymunge.MungeContext().close()  # loads libmunge; fails without it
            self._pymunge = pymunge
        except (ImportError, OSError):
            self._pymunge = None
        # One libmunge context per thread, created once: a context is not thread-safe, and
        # creating one and setting its socket per request cost about as much CPU as the
        # decode itself (bench.credit).
        self._local = threading.local()

    def verify(self, credential: str) -> Identity:
        """The credential's uid and gid; AuthError(401) when munged rejects it,
        AuthError(503) when munged cannot be reached."""
        _check_format(credential)
        if self._pymunge is not None:
            return self._decode_lib(credential)
        return self._decode_bin(credential)

    def _decode_lib(self, credential: str) -> Identity:
        pymunge = self._pymunge
        assert pymunge is not None
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = pymunge.MungeContext()
            ctx.socket = self.socket
            self._local.ctx = ctx
        try:
            _, uid, gid = ctx.decode(credential.encode())
        except pymunge.MungeError as exc:
            raise _error(int(getattr(exc.code, "value", exc.code)), str(exc.message)) from None
        return Identity(int(uid), int(gid))

    def _decode_bin(self, credential: str) -> Identity:
        out = subprocess.run(
            ["unmunge", "-S", self.socket, "-N", "-k", "UID,GID"],
            input=credential.encode(),
            capture_output=True,
            timeout=5,
            check=False,
        )
        if out.returncode != 0:
            raise _error(out.returncode, out.stderr.decode(errors="replace").strip())
        fields = dict(
            line.split(":", 1) for line in out.stdout.decode().splitlines() if ":" in line
        )
        return Identity(int(fields["UID"].split()[0]), int(fields["GID"].split()[0]))


def _error(code: int, detail: str) -> AuthError:
    if code in _REASONS:
        return AuthError(401, _REASONS[code])
    return AuthError(503, f"cannot verify credential: munge error {code} ({detail})")


def uid_resolver(overrides: Mapping[str, int]) -> Callable[[str], int | None]:
    """user name -> uid: the configured map first (sites without NSS on the API host, tests),
    then the system's passwd database."""

    def resolve(user: str) -> int | None:
        if user in overrides:
            return overrides[user]
        try:
            return pwd.getpwnam(user).pw_uid
        except KeyError:
            return None

    return resolve


def check_bearer(header: str | None, token: str | None) -> None:
    """Admins: ``Authorization: Bearer <token>``, compared in constant time."""
    if not token:
        raise AuthError(403, "admin endpoints are disabled (no admin token configured)")
    if not header or not header.startswith("Bearer "):
        raise AuthError(401, "missing bearer token")
    if not hmac.compare_digest(header[7:].encode(), token.encode()):
        raise AuthError(401, "invalid bearer token")
