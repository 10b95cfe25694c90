"""Decoding MUNGE credentials on the event loop: munged's client protocol over a
non-blocking Unix socket, so a server worker goes on with other connections while munged
decodes (libmunge's ``munge_decode`` blocks the worker: two context switches per check and
munged's work between them; bench.credit measured 40-50 us of server CPU per check less
this way, and munged's own cost a little lower as it serves several requests per wake-up).

The messages are libmunge's (munge 0.5.x, ``src/libcommon/m_msg.c``, format version 4;
big-endian integers): a header (magic ``0x00606D4B``, version, type, retry count, body
length) then, for a decode request, the credential's length and bytes with a trailing NUL;
the response carries munged's error code and message, the credential's cipher, MAC,
compression, realm, TTL, origin address, times, uid and gid, restrictions and payload.
``parse_decode_response`` checks every length against the message, and anything it does not
expect (another magic, version or type, a length out of bounds, bytes left over) is a
``MungeProtocolError``: never a uid.

munged itself does the verifying (forged, other realm, expired, replayed), as with
libmunge. What cannot be done here falls back, before the credential reached munged, to
the blocking path (libmunge, with its retries and messages); once it was sent, munged may
have recorded it (replay cache), so a failure then is a 503, not a second attempt.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Callable
from typing import Final

from jobcarbon.api.auth import AuthError, Identity, munge_error

log = logging.getLogger("jobcarbon.api")

MAGIC: Final = 0x00606D4B
VERSION: Final = 4
DEC_REQ: Final = 4
DEC_RSP: Final = 5
_HEADER: Final = struct.Struct(">IBBBI")  # magic, version, type, retry, body length
#: A decode response is ~45 bytes plus munged's message and the payload (none here).
MAX_RESPONSE_BYTES: Final = 1 << 20
TIMEOUT_S: Final = 10.0

Done = Callable[[Identity | AuthError], None]


class MungeProtocolError(Exception):
    """munged's answer is not a decode response this client understands."""


def decode_request(credential: bytes) -> bytes:
    """A decode request for ``credential`` (ASCII, checked by the caller)."""
    body = struct.pack(">I", len(credential) + 1) + credential + b"\0"
    return _HEADER.pack(MAGIC, VERSION, DEC_REQ, 0, len(body)) + body


def response_length(buf: bytes | bytearray) -> int | None:
    """Bytes of the whole response once its header has arrived (None before)."""
    if len(buf) < _HEADER.size:
        return None
    magic, version, kind, _, length = _HEADER.unpack_from(buf)
    if magic != MAGIC or version != VERSION or kind != DEC_RSP:
        raise MungeProtocolError(f"not a decode response (magic {magic:#x}, version "
                                 f"{version}, type {kind})")  # fmt: skip
    if length > MAX_RESPONSE_BYTES:
        raise MungeProtocolError(f"response body of {length} bytes")
    return _HEADER.size + length


def parse_decode_response(buf: bytes | bytearray) -> tuple[int, str, int, int]:
    """(munge error code, munged's message, uid, gid) of a complete decode response."""
    total = response_length(buf)
    if total is None or len(buf) != total:
        raise MungeProtocolError(f"{len(buf)} bytes for a response of {total}")
    view = memoryview(buf)
    pos = _HEADER.size

    def take(n: int) -> memoryview:
        nonlocal pos
        if pos + n > total:
            raise MungeProtocolError("field beyond the end of the response")
        out = view[pos : pos + n]
        pos += n
        return out

    def u8() -> int:
        return take(1)[0]

    def u32() -> int:
        return int.from_bytes(take(4), "big")

    error = u8()
    message = bytes(take(u8())).rstrip(b"\0").decode(errors="replace")
    take(3)  # cipher, MAC, compression
    take(u8())  # realm
    take(4)  # TTL
    if (addr_len := u8()) > 16:
        raise MungeProtocolError(f"address of {addr_len} bytes")
    take(addr_len)
    take(8)  # encode and decode times
    uid, gid = u32(), u32()
    take(8)  # uid and gid restrictions
    take(u32())  # payload
    if pos != total:
        raise MungeProtocolError(f"{total - pos} bytes after the response")
    return error, message, uid, gid


class AsyncDecoder:
    """Decodes on ``loop`` against the munged at ``path``; ``fallback`` is the blocking
    decode used when munged cannot be reached without blocking (it is then not reached at
    all, and the blocking path retries as libmunge does)."""

    def __init__(
        self,
        path: str,
        loop: asyncio.AbstractEventLoop,
        fallback: Callable[[bytes], Identity],
    ) -> None:
        self.path, self.loop, self.fallback = path, loop, fallback
        self._pending: dict[int, _Pending] = {}
        self._sweep: asyncio.TimerHandle | None = None

    def decode(self, credential: bytes, done: Done) -> None:
        """Send ``credential`` to munged; ``done`` gets its Identity or the AuthError, on
        the loop, always after this call has returned (also when falling back)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        request = decode_request(credential)
        try:
            sock.connect(self.path)
            sent = sock.send(request)
        except OSError as exc:  # not there, refused, backlog full: munged has not seen it
            sock.close()
            if exc.errno not in (errno.EAGAIN, errno.ECONNREFUSED, errno.ENOENT):
                log.warning("munged at %s: %s; decoding through libmunge", self.path, exc)
            self.loop.call_soon(_call, done, self._blocking, credential)
            return
        if sent != len(request):  # a truncated request: munged drops it undecoded
            sock.close()
            self.loop.call_soon(_call, done, self._blocking, credential)
            return
        pending = _Pending(sock, done, self.loop.time() + TIMEOUT_S)
        self._pending[sock.fileno()] = pending
        self.loop.add_reader(sock.fileno(), self._readable, pending)
        if self._sweep is None:
            self._sweep = self.loop.call_later(1.0, self._expire)

    def _blocking(self, credential: bytes) -> Identity:
        return self.fallback(credential)

    def _readable(self, pending: _Pending) -> None:
        try:
            chunk = pending.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._finish(pending, AuthError(503, f"cannot verify credential: munged: {exc}"))
            return
        pending.buf += chunk
        try:
            total = response_length(pending.buf)
            if not chunk and (total is None or len(pending.buf) < total):
                raise MungeProtocolError("munged closed the connection mid-response")
            if total is None or len(pending.buf) < total:
                return
            code, message, uid, gid = parse_decode_response(pending.buf)
        except MungeProtocolError as exc:
            log.error("munged at %s answered what is not a decode response: %s", self.path, exc)
            self._finish(pending, AuthError(503, "cannot verify credential: bad munged answer"))
            return
        self._finish(pending, munge_error(code, message) if code else Identity(uid, gid))

    def _finish(self, pending: _Pending, result: Identity | AuthError) -> None:
        fd = pending.sock.fileno()
        self.loop.remove_reader(fd)
        self._pending.pop(fd, None)
        pending.sock.close()
        pending.done(result)

    def _expire(self) -> None:
        """Give up on decodes munged has not answered within TIMEOUT_S (one timer for
        all, while any is pending)."""
        now = self.loop.time()
        for pending in [p for p in self._pending.values() if p.deadline <= now]:
            self._finish(pending, AuthError(503, "cannot verify credential: munged timed out"))
        self._sweep = self.loop.call_later(1.0, self._expire) if self._pending else None


class _Pending:
    __slots__ = ("buf", "deadline", "done", "sock")

    def __init__(self, sock: socket.socket, done: Done, deadline: float) -> None:
        self.sock, self.done, self.deadline = sock, done, deadline
        self.buf = bytearray()


def _call(done: Done, decode: Callable[[bytes], Identity], credential: bytes) -> None:
    try:
        result: Identity | AuthError = decode(credential)
    except AuthError as exc:
        result = exc
    done(result)
