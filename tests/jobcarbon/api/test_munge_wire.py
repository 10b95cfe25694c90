"""munged's client protocol on the event loop (jobcarbon.api.munge_wire): the messages
against a real munged (same answers as libmunge), and what a broken peer gets (a 503,
never a uid): garbage, a short answer, silence."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobcarbon.api import munge_wire as mw
from jobcarbon.api.auth import AuthError, Identity, MungeVerifier


def response(error: int = 0, message: bytes = b"", uid: int = 1234, gid: int = 99,
             addr: bytes = b"\x7f\0\0\1", payload: bytes = b"") -> bytes:  # fmt: skip
    """A decode response as munged 0.5.15 writes it (captured with strace, then built)."""
    body = (
        bytes([error, len(message)]) + message + bytes([4, 5, 0, 0])
        + struct.pack(">I", 300) + bytes([len(addr)]) + addr + struct.pack(">II", 1, 2)
        + struct.pack(">IIII", uid, gid, 0xFFFFFFFF, 0xFFFFFFFF)
        + struct.pack(">I", len(payload)) + payload
    )  # fmt: skip
    return struct.pack(">IBBBI", mw.MAGIC, mw.VERSION, mw.DEC_RSP, 0, len(body)) + body


def test_request_bytes() -> None:
    # as libmunge sends it: header, then length and credential with its NUL
    assert mw.decode_request(b"MUNGE:AB:") == (
        b"\x00\x60\x6d\x4b\x04\x04\x00\x00\x00\x00\x0e" + b"\x00\x00\x00\x0aMUNGE:AB:\x00"
    )


def test_parse_a_response() -> None:
    assert mw.parse_decode_response(response()) == (0, "", 1234, 99)
    assert mw.parse_decode_response(response(15, b"Expired credential\0")) == (
        15, "Expired credential", 1234, 99)  # fmt: skip
    assert mw.parse_decode_response(response(payload=b"data")) == (0, "", 1234, 99)


@pytest.mark.parametrize(
    "bad",
    [
        response()[:-1],  # short
        response() + b"\0",  # a byte too many
        b"\0\0\0\0" + response()[4:],  # magic
        response()[:4] + b"\x05" + response()[5:],  # version
        response()[:5] + bytes([mw.DEC_REQ]) + response()[6:],  # type
        response()[:7] + struct.pack(">I", mw.MAX_RESPONSE_BYTES + 1) + response()[11:],
        response(addr=b"\0" * 17),
        response(message=b"x")[:11] + b"\x00\xff" + response(message=b"x")[13:],  # length
    ],
)
def test_a_malformed_response_is_an_error_never_a_uid(bad: bytes) -> None:
    with pytest.raises(mw.MungeProtocolError):
        mw.parse_decode_response(bad)


def _decode(path: str, credential: str, fallback: Callable[[bytes], Identity]) -> object:
    async def run() -> object:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[object] = loop.create_future()
        mw.AsyncDecoder(path, loop, fallback).decode(credential.encode(), done.set_result)
        return await done

    return asyncio.run(run())


def _no_fallback(credential: bytes) -> Identity:
    raise AssertionError("the blocking path must not be used here")


@pytest.mark.munge
def test_same_answers_as_libmunge(munged) -> None:  # type: ignore[no-untyped-def]
    lib = MungeVerifier(munged.socket)
    for os_user in ("nobody", "daemon", None):
        cred = munged.encode(as_user=os_user) if os_user else munged.encode()
        got = _decode(munged.socket, cred, _no_fallback)
        assert isinstance(got, Identity)
        with pytest.raises(AuthError, match="replayed"):
            lib.verify(cred)  # munged recorded the decode above
        assert got == lib.verify(munged.encode(as_user=os_user) if os_user else munged.encode())
        again = _decode(munged.socket, cred, _no_fallback)
        assert isinstance(again, AuthError) and again.status == 401
        assert "replayed" in again.reason


@pytest.fixture
def fake_munged(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """A Unix socket that answers each connection with the next scripted bytes (b"" =
    close at once, None = never answer)."""
    path = str(tmp_path / "fake.socket")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    script: list[bytes] = []
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            answer = script.pop(0) if script else b""
            if answer is None:
                held.append(conn)  # silence
                continue
            conn.sendall(answer)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, script
    server.close()
    for conn in held:
        conn.close()
    os.unlink(path)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"garbage that is no munge message", "bad munged answer"),
        (response()[:20], "bad munged answer"),
        (b"", "bad munged answer"),
    ],
)
def test_a_broken_munged_gets_a_503(
    fake_munged: tuple[str, list[bytes]], answer: bytes, reason: str
) -> None:
    path, script = fake_munged
    script.append(answer)
    got = _decode(path, "MUNGE:AAAA:", _no_fallback)
    assert isinstance(got, AuthError) and got.status == 503 and reason in got.reason


def test_a_scripted_answer_is_read(fake_munged: tuple[str, list[bytes]]) -> None:
    path, script = fake_munged
    script += [response(uid=4242, gid=7), response(17, b"Replayed credential\0")]
    assert _decode(path, "MUNGE:AAAA:", _no_fallback) == Identity(4242, 7)
    got = _decode(path, "MUNGE:AAAA:", _no_fallback)
    assert isinstance(got, AuthError) and got.status == 401 and "replayed" in got.reason


def test_silence_times_out(
    fake_munged: tuple[str, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, script = fake_munged
    script.append(None)  # type: ignore[arg-type]
    monkeypatch.setattr(mw, "TIMEOUT_S", 0.2)
    got = _decode(path, "MUNGE:AAAA:", _no_fallback)
    assert isinstance(got, AuthError) and got.status == 503 and "timed out" in got.reason


def test_no_munged_falls_back_before_sending(tmp_path: Path) -> None:
    seen: list[bytes] = []

    def fallback(credential: bytes) -> Identity:
        seen.append(credential)
        return Identity(1, 1)

    assert _decode(str(tmp_path / "none.socket"), "MUNGE:AAAA:", fallback) == Identity(1, 1)
    assert seen == [b"MUNGE:AAAA:"]


def test_the_fallback_answers_after_decode_returns(tmp_path: Path) -> None:
    """``done`` never runs inside ``decode`` (the caller sets its waiting state after)."""

    async def run() -> list[object]:
        answers: list[object] = []
        decoder = mw.AsyncDecoder(str(tmp_path / "none.socket"), asyncio.get_running_loop(),
                                  lambda credential: Identity(1, 1))  # fmt: skip
        decoder.decode(b"MUNGE:AAAA:", answers.append)
        assert answers == []
        await asyncio.sleep(0)
        return answers

    assert asyncio.run(run()) == [Identity(1, 1)]
