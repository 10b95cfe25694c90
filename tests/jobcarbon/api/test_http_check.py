"""The /v1/check connection protocol (jobcarbon.api.http_check) over real sockets, served as
``credit serve`` serves it (uvicorn, PostgreSQL, munged): the answers are those of the ASGI
path byte for byte, keep-alive and pipelining work, anything else on the connection is
handed to uvicorn, and the limits hold (each rejection with a status, a message and a log
line)."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from jobcarbon.api import http_check
from tests.services.credit_api import ADMIN_TOKEN, Server

pytestmark = [pytest.mark.postgres, pytest.mark.munge]
ADMIN = f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()


def _body(server: Server, **over: object) -> bytes:
    job = server.alice
    body = {"user": job.user.name, "account": job.account, "partition": job.partition,
            "nodes": max(1, len(job.nodes)), "cpus": job.cpus, "time_limit_s": 3600,
            "job_name": job.job_name, **over}  # fmt: skip
    return json.dumps(body).encode()


def check(body: bytes, headers: bytes = ADMIN, version: bytes = b"1.1") -> bytes:
    return (
        b"POST /v1/check HTTP/" + version + b"\r\nHost: test\r\nContent-Type: application/json\r\n"
        + headers + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip


class Conn:
    """A raw client connection that reads responses framed by Content-Length."""

    def __init__(self, server: Server) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"connection closed, got {self.buf!r}"
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        length = int(headers["content-length"])
        while len(self.buf) < length:
            assert self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(lines[0].split()[1]), headers, body

    def closed(self) -> bool:
        """The server closed the connection (EOF) with nothing more to read."""
        return not self._fill() and not self.buf

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def conn(api_server: Server) -> Iterator[Conn]:
    c = Conn(api_server)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jobcarbon.api")


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The connections handed over to uvicorn's protocol during the test."""
    seen: list[object] = []

    class Counting(http_check.HttpToolsProtocol):
        def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
            seen.append(transport)
            super().connection_made(transport)

    monkeypatch.setattr(http_check, "HttpToolsProtocol", Counting)
    return seen


def test_same_bytes_as_the_uvicorn_path(
    api_server: Server, conn: Conn, handed: list[object]
) -> None:
    """A chunked body is handed to uvicorn (ASGI, the app's front): same answer (fixed
    clock), and the protocol sends uvicorn's date and server headers."""
    body = _body(api_server)
    conn.send(check(body))
    status, headers, fast = conn.response()
    assert status == 200 and headers["content-type"] == "application/json"
    assert {"date", "server"} <= set(headers)
    assert handed == []
    chunked = httpx.post(
        f"{api_server.url}/v1/check",
        content=iter([body[:10], body[10:]]),  # an iterator: Transfer-Encoding chunked
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    assert chunked.status_code == 200 and chunked.content == fast
    assert len(handed) == 1
    assert json.loads(fast)["user"] == api_server.alice.user.name


def test_keep_alive_pipelining_and_hand_over(
    api_server: Server, conn: Conn, handed: list[object]
) -> None:
    """Two checks and a GET in one write, then a check on the same connection: the GET and
    everything after it are uvicorn's, in order."""
    body = _body(api_server)
    conn.send(check(body) + check(body) + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    answers = [conn.response() for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 200]
    assert answers[0][2] == answers[1][2] and json.loads(answers[2][2]) == {"status": "ok"}
    assert len(handed) == 1
    conn.send(check(body))
    status, _, again = conn.response()
    assert status == 200 and again == answers[0][2]
    assert len(handed) == 1  # the connection stays uvicorn's


def test_request_in_one_byte_writes(api_server: Server, conn: Conn) -> None:
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in check(_body(api_server)):
        conn.send(bytes([byte]))
    assert conn.response()[0] == 200


def test_user_credentials_over_the_wire(api_server: Server, conn: Conn, munged) -> None:  # type: ignore[no-untyped-def]
    body = _body(api_server)
    conn.send(check(body, b""))
    status, _, out = conn.response()
    assert status == 401 and b"missing X-Munge-Credential" in out
    cred = b"X-Munge-Credential: %s\r\n" % munged.encode().encode()
    conn.send(check(body, cred))
    assert conn.response()[0] == 200
    conn.send(check(body, cred))
    status, _, out = conn.response()
    assert status == 401 and b"replayed" in out


def test_pipelined_checks_wait_for_munged_in_order(api_server: Server, conn: Conn, munged) -> None:  # type: ignore[no-untyped-def]
    """Requests behind one whose credential munged is decoding (on the event loop) are
    answered after it, in order; one of them replayed."""
    first = munged.encode()
    creds = [first, munged.encode(), first, munged.encode()]
    bodies = [_body(api_server), _body(api_server, time_limit_s=60), _body(api_server),
              _body(api_server, time_limit_s=7200)]  # fmt: skip
    heads = [b"X-Munge-Credential: %s\r\n" % c.encode() for c in creds]
    conn.send(b"".join(check(b, h) for b, h in zip(bodies, heads, strict=True)))
    answers = [conn.response() for _ in bodies]
    assert [a[0] for a in answers] == [200, 200, 401, 200]
    assert b"replayed" in answers[2][2]
    # the predicted runtime scales with the time limit asked: each answer is its request's
    runtimes = [json.loads(a[2])["prediction"]["runtime_s"] for a in answers if a[0] == 200]
    assert runtimes[0] == pytest.approx(60 * runtimes[1])
    assert runtimes[2] == pytest.approx(120 * runtimes[1])


def test_http_10_and_connection_close(api_server: Server) -> None:
    for request in (
        check(_body(api_server), version=b"1.0"),
        check(_body(api_server), ADMIN + b"Connection: close\r\n"),
    ):
        c = Conn(api_server)
        c.send(request)
        status, headers, _ = c.response()
        assert status == 200 and headers["connection"] == "close"
        assert c.closed()
        c.close()


def _rejected(caplog: pytest.LogCaptureFixture, status: int) -> None:
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"rejected POST /v1/check: {status}" in m for m in messages), messages


def test_body_too_large(api_server: Server, conn: Conn, caplog: pytest.LogCaptureFixture) -> None:
    limit = api_server.app.front.limit  # type: ignore[union-attr]
    conn.send(check(b"{" + b" " * limit + b"}"))
    status, headers, out = conn.response()
    assert status == 413 and b"larger than" in out and headers["connection"] == "close"
    _rejected(caplog, 413)


def test_head_too_large(api_server: Server, conn: Conn, caplog: pytest.LogCaptureFixture) -> None:
    filler = b"X-Filler: " + b"a" * http_check.MAX_HEAD_BYTES + b"\r\n"
    conn.send(check(_body(api_server), ADMIN + filler))
    status, _, out = conn.response()
    assert status == 431 and b"request head larger than" in out
    assert conn.closed()
    _rejected(caplog, 431)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n{}",
        b"POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"POST /v1/check HTTP/1.1\r\nBad Header: t\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/check HTTP/1.1\r\nHost: t\nContent-Length: 2\r\n\r\n{}",
    ],
)
def test_malformed_http_is_400(api_server: Server, request_bytes: bytes) -> None:
    c = Conn(api_server)
    c.send(request_bytes)
    status, _, out = c.response()
    assert status == 400 and out == b"Invalid HTTP request received."
    assert c.closed()
    c.close()


def test_malformed_json_and_fields_are_422(api_server: Server, conn: Conn) -> None:
    conn.send(check(b"{not json"))
    status, _, out = conn.response()
    assert status == 422 and json.loads(out)["detail"][0]["field"] == "body"
    conn.send(check(_body(api_server, user="x' OR '1'='1")))
    status, _, out = conn.response()
    assert status == 422 and json.loads(out)["detail"][0]["field"] == "body.user"


def test_incomplete_request_times_out(
    api_server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(http_check, "REQUEST_TIMEOUT_S", 0.3)
    c = Conn(api_server)
    c.send(check(_body(api_server))[:-5])
    time.sleep(0.1)  # the first tick is at the keep-alive timeout (uvicorn's default 5 s)
    started = time.monotonic()
    assert c.closed()
    assert time.monotonic() - started < 7
    assert any("not complete within" in r.getMessage() for r in caplog.records)
    c.close()


def test_idle_keep_alive_connection_is_closed(api_server: Server, conn: Conn) -> None:
    conn.send(check(_body(api_server)))
    assert conn.response()[0] == 200
    started = time.monotonic()
    assert conn.closed()  # uvicorn's timeout_keep_alive, 5 s by default
    assert 4 < time.monotonic() - started < 8


class _Clock:
    """A stand-in event loop: a settable time, timers recorded, never run by itself."""

    def __init__(self) -> None:
        self.now, self.timers = 0.0, []  # type: ignore[var-annotated]

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback):  # type: ignore[no-untyped-def]
        self.timers.append((self.now + delay, callback))
        return _Handle()


class _Handle:
    def cancel(self) -> None:
        pass


class _Transport:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_a_late_timeout_tick_does_not_close_a_busy_connection() -> None:
    """After the loop was busy past the keep-alive deadline, the tick runs before the bytes
    that arrived meanwhile: it waits a little instead of closing (no asyncio loop here, the
    clock is moved by hand)."""
    from types import SimpleNamespace

    clock = _Clock()
    state = SimpleNamespace(connections=set(), default_headers=[], total_requests=0)
    config = SimpleNamespace(timeout_keep_alive=5)
    protocol = http_check.CheckProtocol(config, state, {}, _loop=clock)  # type: ignore[arg-type]
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    due, tick = clock.timers[-1]
    assert due == 5.0
    clock.now = 30.0  # the loop stood still for 25 s
    tick()
    assert not transport.closed
    due, tick = clock.timers[-1]
    assert due == pytest.approx(30.0 + http_check.LATE_TICK_S)
    protocol.data_received(b"POST /v1/ch")  # the request that was waiting (incomplete)
    clock.now = due
    tick()
    assert not transport.closed  # a request started at 30 s has REQUEST_TIMEOUT_S
    due, tick = clock.timers[-1]
    assert due == pytest.approx(30.0 + http_check.REQUEST_TIMEOUT_S)
    clock.now = due
    tick()
    assert transport.closed


class _Written(_Transport):
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def is_closing(self) -> bool:
        return self.closed


def test_answers_in_order_whenever_begin_calls_back() -> None:
    """A handler that answers through the callback, before returning or later, or right
    away: each request of a pipelined write gets one answer, in order."""
    from types import SimpleNamespace

    pending: list[tuple[object, bytes]] = []

    class Front:
        limit = 16_384

        def too_large(self) -> tuple[int, bytes]:
            return 413, b"{}"

        def begin(self, credential, authorization, raw, done):  # type: ignore[no-untyped-def]
            kind = json.loads(raw)["kind"]
            if kind == "now":
                return 200, raw
            if kind == "inside":
                done(200, raw)  # before returning
                return None
            pending.append((done, raw))
            return None

    clock = _Clock()
    state = SimpleNamespace(connections=set(), default_headers=[], total_requests=0)
    protocol = http_check.check_protocol(Front())(  # type: ignore[arg-type]
        SimpleNamespace(timeout_keep_alive=5), state, {}, _loop=clock
    )
    transport = _Written()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    kinds = ["later", "inside", "now", "later", "now"]
    protocol.data_received(b"".join(check(json.dumps({"kind": k}).encode()) for k in kinds))
    while pending:
        done, raw = pending.pop(0)
        done(200, raw)  # type: ignore[operator]
    bodies = [out.rsplit(b"\r\n\r\n", 1)[1] for out in transport.out]
    assert [json.loads(b)["kind"] for b in bodies] == kinds
