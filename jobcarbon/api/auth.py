"""Who is calling: users by MUNGE credential, admins by bearer token.

A user's credential travels in the ``X-Munge-Credential`` header and is decoded by the
site's munged (``socket`` in settings) through libmunge (``Libmunge``, ctypes), or the
``unmunge`` binary when libmunge cannot be loaded. munged itself rejects forged, expired
and replayed credentials; the API then requires the credential's uid to be the uid of the
user asked about.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import hmac
import pwd
import re
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from jobcarbon.api.munge_wire import AsyncDecoder

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


#: munge.h: ``MUNGE_OPT_SOCKET`` (munge_ctx_set), ``EMUNGE_SUCCESS``.
_OPT_SOCKET: Final = 8
_SUCCESS: Final = 0


class Libmunge:
    """``munge_decode`` of libmunge through ctypes, one context per thread (a context is
    not thread-safe; creating one and setting its socket per request cost about as much as
    the decode, bench.credit).

    Loaded with ``ctypes.PyDLL``: the call keeps the GIL while it waits on munged (tens of
    microseconds). Releasing it there, as ``CDLL`` does, let the state-refresh thread of a
    server worker take the GIL for a whole switch interval (5 ms) before the event loop got
    it back: every check during a refresh waited that long (bench.credit)."""

    def __init__(self, socket: str, path: str) -> None:
        self.socket = socket.encode()
        lib = ctypes.PyDLL(path)
        lib.munge_ctx_create.restype = ctypes.c_void_p
        lib.munge_ctx_create.argtypes = []
        lib.munge_ctx_set.restype = ctypes.c_int
        lib.munge_decode.restype = ctypes.c_int
        lib.munge_decode.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
                                     ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
        lib.munge_ctx_strerror.restype = ctypes.c_char_p
        lib.munge_ctx_strerror.argtypes = [ctypes.c_void_p]
        lib.munge_strerror.restype = ctypes.c_char_p
        lib.munge_strerror.argtypes = [ctypes.c_int]
        lib.munge_ctx_destroy.restype = None
        lib.munge_ctx_destroy.argtypes = [ctypes.c_void_p]
        self._lib = lib
        self._local = threading.local()

    def _context(self) -> tuple[Any, Any, Any, int, int]:
        """This thread's (context, uid, gid, pointer to uid, pointer to gid)."""
        local = self._local
        state = getattr(local, "state", None)
        if state is None:
            ctx = self._lib.munge_ctx_create()
            if not ctx:
                raise AuthError(503, "cannot verify credential: munge_ctx_create failed")
            err = self._lib.munge_ctx_set(ctypes.c_void_p(ctx), _OPT_SOCKET, self.socket)
            if err != _SUCCESS:
                self._lib.munge_ctx_destroy(ctypes.c_void_p(ctx))
                raise munge_error(err, _text(self._lib.munge_strerror(err)))
            uid, gid = ctypes.c_uint32(), ctypes.c_uint32()
            state = local.state = (ctx, uid, gid, ctypes.addressof(uid), ctypes.addressof(gid))
        return state

    def decode(self, credential: bytes) -> Identity:
        """The credential's uid and gid (its payload, if any, is not read);
        ``AuthError`` as ``_error`` maps munge's codes."""
        ctx, uid, gid, uid_p, gid_p = self._context()
        err = self._lib.munge_decode(credential, ctx, None, None, uid_p, gid_p)
        if err != _SUCCESS:
            raise munge_error(err, _text(self._lib.munge_ctx_strerror(ctx)))
        return Identity(uid.value, gid.value)


def _text(message: bytes | None) -> str:
    return (message or b"no message").decode(errors="replace")


def load_libmunge(socket: str) -> Libmunge | None:
    """libmunge for ``socket``, or None where the library cannot be found or loaded."""
    path = ctypes.util.find_library("munge")
    if path is None:
        return None
    try:
        return Libmunge(socket, path)
    except (OSError, AttributeError):
        return None


class MungeVerifier:
    """Decodes credentials against one munged socket."""

    def __init__(self, socket: str) -> None:
        self.socket = socket
        self._lib = load_libmunge(socket)
        self._async: AsyncDecoder | None = None

    def verify(self, credential: str) -> Identity:
        """The credential's uid and gid; AuthError(401) when munged rejects it,
        AuthError(503) when munged cannot be reached."""
        _check_format(credential)
        return self._decode_blocking(credential.encode())

    def verify_async(self, credential: str, done: Callable[[Identity | AuthError], None]) -> None:
        """``verify`` on the running event loop (jobcarbon.api.munge_wire): ``done`` gets
        the Identity or the AuthError; a malformed credential raises AuthError here."""
        _check_format(credential)
        loop = asyncio.get_running_loop()
        decoder = self._async
        if decoder is None or decoder.loop is not loop:
            from jobcarbon.api.munge_wire import AsyncDecoder

            decoder = self._async = AsyncDecoder(self.socket, loop, self._decode_blocking)
        decoder.decode(credential.encode(), done)

    def _decode_blocking(self, credential: bytes) -> Identity:
        if self._lib is not None:
            return self._lib.decode(credential)
        return self._decode_bin(credential)

    def _decode_bin(self, credential: bytes) -> Identity:
        out = subprocess.run(
            ["unmunge", "-S", self.socket, "-N", "-k", "UID,GID"],
            input=credential,
            capture_output=True,
            timeout=5,
            check=False,
        )
        if out.returncode != 0:
            raise munge_error(out.returncode, out.stderr.decode(errors="replace").strip())
        fields = dict(
            line.split(":", 1) for line in out.stdout.decode().splitlines() if ":" in line
        )
        return Identity(int(fields["UID"].split()[0]), int(fields["GID"].split()[0]))


def munge_error(code: int, detail: str) -> AuthError:
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
