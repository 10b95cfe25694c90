"""The HTTP/1.1 connection protocol of ``jobcarbon credit serve``: ``POST /v1/check`` is
parsed (httptools, as uvicorn does) and answered right here, without an ASGI task, scope or
message per request (the only wait, munged decoding the credential, is a callback on the
event loop: jobcarbon.api.munge_wire); every other request, and any ``/v1/check`` request
out of the plain shape below, is handed over with its connection to uvicorn's own
``HttpToolsProtocol`` (the FastAPI app, its OpenAPI, its errors), which keeps the
connection from then on. uvicorn runs the server (sockets, lifespan, signals, graceful
shutdown, the ``date`` and ``server`` headers) and instantiates this class per connection.

Served here: a request whose request line is exactly ``POST /v1/check HTTP/1.1`` (or
``HTTP/1.0``), whose header block ends within ``MAX_HEAD_BYTES``, with one
``Content-Length`` and no ``Transfer-Encoding``, ``Expect`` or ``Upgrade``. Its framing is
exact (head = up to the first CRLF CRLF, which llhttp requires; body = Content-Length
bytes), so pipelined requests and a hand-over in the middle of a keep-alive connection start
uvicorn at the first byte of its request. Limits: head ``MAX_HEAD_BYTES`` (431, then close),
body the API's ``max_request_bytes`` (413, then close), a started request must arrive within
``REQUEST_TIMEOUT_S`` and an idle keep-alive connection is closed after uvicorn's
``timeout_keep_alive``; llhttp's syntax errors get uvicorn's 400 and a close.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger("jobcarbon.api")
uvicorn_log = logging.getLogger("uvicorn.error")

#: Request line, headers and the blank line of a /v1/check request (a MUNGE credential is
#: a few hundred bytes, at most 4 KiB: jobcarbon.api.auth).
MAX_HEAD_BYTES: Final = 16_384
REQUEST_TIMEOUT_S: Final = 10.0
#: A timeout tick this late (s) is put off by as much (see ``CheckProtocol._tick``).
LATE_TICK_S: Final = 0.25
_LINES: Final = (b"POST /v1/check HTTP/1.1\r\n", b"POST /v1/check HTTP/1.0\r\n")
_LINE_LEN: Final = len(_LINES[0])
_CRLF2: Final = b"\r\n\r\n"
#: Headers that send the request to uvicorn (framing or protocol changes it handles).
_HAND_OVER: Final = frozenset({b"transfer-encoding", b"expect", b"upgrade"})


class CheckHandler(Protocol):
    """What the protocol calls (``FastCheck`` in jobcarbon.api.app): ``begin`` answers
    right away, or returns None and calls ``done`` later (munged decoding)."""

    limit: int

    def begin(
        self,
        credential: str | None,
        authorization: str | None,
        raw: bytes,
        done: Callable[[int, bytes], None],
    ) -> tuple[int, bytes] | None: ...

    def too_large(self) -> tuple[int, bytes]: ...


def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, http.HTTPStatus(status).phrase.encode())


_STATUS: Final = {s.value: _status_line(s.value) for s in http.HTTPStatus if s.value >= 200}


def check_protocol(front: CheckHandler) -> type[CheckProtocol]:
    """The protocol class to give uvicorn (``Config(http=...)``), bound to ``front``."""
    return type("BoundCheckProtocol", (CheckProtocol,), {"front": front})


class CheckProtocol(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    front: CheckHandler

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config, self.server_state, self.app_state = config, server_state, app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # loop time the timer is due
        self._since = 0.0  # loop time: the current request's first byte, or idle since
        # The request being parsed (set by the parser callbacks).
        self._lengths: list[bytes] = []  # Content-Length values
        self._credential: bytes | None = None  # the first X-Munge-Credential
        self._authorization: bytes | None = None  # the first Authorization
        self._odd = False  # a header that sends the request to uvicorn
        self._headers_done = self._complete = self._keep_alive = False
        self._waiting = False  # an answer is being computed (munged): read, do not parse

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self._since = self.loop.time()
        self._arm(float(self.config.timeout_keep_alive))

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()

    def pause_writing(self) -> None:
        if self.transport is not None:  # a client that does not read: stop reading it
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close now, or after the answer munged is decoding
        for."""
        if self.transport is None:
            return
        if self._waiting:
            self._keep_alive = False
        else:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        if not buf:
            self._since = self.loop.time()
        buf += data
        while buf and self.transport is not None and not self._waiting:
            if not self._serve_one(buf):
                return

    # -- one request -----------------------------------------------------------------------
    def _serve_one(self, buf: bytearray) -> bool:
        """Serve the request at the start of ``buf`` if it is complete; False when waiting
        for more bytes or the connection is no longer this protocol's."""
        start = bytes(buf[:_LINE_LEN])
        if start not in _LINES:
            if any(line.startswith(start) for line in _LINES):
                return False  # the request line is not complete yet
            self._hand_over()
            return False
        end = buf.find(_CRLF2, _LINE_LEN - 2)
        if end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                self._reject(431, f"request head larger than {MAX_HEAD_BYTES} bytes")
            return False
        head_len = end + 4
        if head_len > MAX_HEAD_BYTES:
            self._reject(431, f"request head larger than {MAX_HEAD_BYTES} bytes")
            return False
        length = self._content_length(buf, head_len)
        if length is None:
            return False
        total = head_len + length
        if len(buf) < total:
            return False
        body = bytes(buf[head_len:total])
        try:
            self.parser.feed_data(body)
        except httptools.HttpParserError:
            self._reject_invalid()
            return False
        if not self._complete:  # cannot happen: llhttp frames as the head said
            self._reject_invalid()
            return False
        del buf[:total]
        credential, authorization = self._credential, self._authorization
        self._lengths, self._credential, self._authorization, self._odd = [], None, None, False
        self._headers_done = self._complete = False
        self._waiting = True  # until answered (``_answered`` clears it)
        answer = self._answer(credential, authorization, body)
        if answer is None:  # munged is decoding: the next request waits for this answer
            return False
        self._waiting = False
        self._respond(*answer)
        if buf:
            self._since = self.loop.time()
        return True

    def _answered(self, status: int, body: bytes) -> None:
        """The answer of the request ``begin`` left waiting; then the requests behind it."""
        self._waiting = False
        if self.transport is None:  # closed meanwhile
            return
        self._respond(status, body)
        if self._buf and self.transport is not None:
            self._since = self.loop.time()
            self.data_received(b"")

    def _content_length(self, buf: bytearray, head_len: int) -> int | None:
        """Parse the head (once per request) and decide: the body length of a request
        served here, or None (handed over, rejected, or the body too large)."""
        if not self._headers_done:
            try:
                self.parser.feed_data(bytes(buf[:head_len]))
            except httptools.HttpParserUpgrade:
                self._hand_over()
                return None
            except httptools.HttpParserError:
                self._reject_invalid()
                return None
            if not self._headers_done:
                self._reject_invalid()
                return None
        if len(self._lengths) != 1 or self._odd:
            self._hand_over()
            return None
        length = int(self._lengths[0])  # llhttp checked: digits only, not repeated
        if self._complete != (length == 0):  # cannot happen: llhttp frames as the head says
            self._reject_invalid()
            return None
        if length > self.front.limit:
            status, body = self.front.too_large()
            self._respond(status, body, close=True)
            return None
        return length

    def _answer(
        self, raw_credential: bytes | None, raw_authorization: bytes | None, body: bytes
    ) -> tuple[int, bytes] | None:
        credential = None if raw_credential is None else raw_credential.decode("latin-1")
        authorization = None if raw_authorization is None else raw_authorization.decode("latin-1")
        try:
            return self.front.begin(credential, authorization, body, self._answered)
        except Exception:
            uvicorn_log.exception("Exception in POST /v1/check")
            self._keep_alive = False
            return 500, b"Internal Server Error"

    # -- parser callbacks (httptools) ------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self._lengths.append(value)
        elif name == b"x-munge-credential":
            if self._credential is None:
                self._credential = value
        elif name == b"authorization":
            if self._authorization is None:
                self._authorization = value
        elif name in _HAND_OVER:
            self._odd = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        parser = self.parser
        self._keep_alive = parser.get_http_version() == "1.1" and parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self._complete = True

    # -- replies ---------------------------------------------------------------------------
    def _respond(self, status: int, body: bytes, *, close: bool = False) -> None:
        transport = self.transport
        assert transport is not None
        close = close or not self._keep_alive or status == 500
        parts = [_STATUS[status]]
        for name, value in self.server_state.default_headers:
            parts += [name, b": ", value, b"\r\n"]
        ctype = b"application/json" if status != 500 else b"text/plain; charset=utf-8"
        parts += [b"content-type: ", ctype, b"\r\ncontent-length: ", b"%d" % len(body), b"\r\n"]
        if close:
            parts.append(b"connection: close\r\n")
        parts += [b"\r\n", body]
        transport.write(b"".join(parts))
        self.server_state.total_requests += 1
        self._since = self.loop.time()
        if close:
            self._stop()
            transport.close()

    def _reject(self, status: int, reason: str) -> None:
        log.warning("rejected POST /v1/check: %d %s", status, reason)
        self._keep_alive = False
        self._respond(
            status, json.dumps({"detail": reason}, separators=(",", ":")).encode(), close=True
        )

    def _reject_invalid(self) -> None:
        """As uvicorn answers what llhttp refuses."""
        message = b"Invalid HTTP request received."
        uvicorn_log.warning(message.decode())
        transport = self.transport
        assert transport is not None
        transport.write(
            _STATUS[400] + b"content-type: text/plain; charset=utf-8\r\ncontent-length: "
            b"%d\r\nconnection: close\r\n\r\n%s" % (len(message), message)
        )
        self._stop()
        transport.close()

    # -- hand-over and timeouts ------------------------------------------------------------
    def _hand_over(self) -> None:
        """The connection goes to uvicorn's protocol, with every byte not answered here
        (the request at the start of the buffer and anything after it)."""
        transport = self.transport
        assert transport is not None
        self._stop()
        data = bytes(self._buf)
        self._buf.clear()
        protocol = HttpToolsProtocol(
            config=self.config,
            server_state=self.server_state,
            app_state=self.app_state,
            _loop=self.loop,
        )
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        if data:
            protocol.data_received(data)

    def _stop(self) -> None:
        """This protocol is done with the connection (closed or handed over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.server_state.connections.discard(self)
        self.transport = None

    def _arm(self, delay: float) -> None:
        self._due = self.loop.time() + delay
        self._timer = self.loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        """Close a connection idle for ``timeout_keep_alive`` or whose request has not
        arrived within ``REQUEST_TIMEOUT_S`` of its first byte (one timer per connection,
        re-armed at its deadline: nothing to do per request). A tick that runs late (the
        loop was busy: timers run before the bytes that arrived meanwhile are read) waits a
        little more rather than close a connection whose next request may be unread."""
        transport = self.transport
        if transport is None:
            return
        now = self.loop.time()
        if now - self._due > LATE_TICK_S or self._waiting:  # (munged has its own timeout)
            self._arm(LATE_TICK_S)
            return
        limit = REQUEST_TIMEOUT_S if self._buf else float(self.config.timeout_keep_alive)
        left = self._since + limit - now
        if left > 0:
            self._arm(left)
            return
        if self._buf:
            log.warning("closed a connection: request not complete within %.0f s", limit)
        self._stop()
        transport.close()
