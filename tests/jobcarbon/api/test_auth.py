"""MUNGE verification against a real munged: valid, forged, other realm, expired, replayed."""

from __future__ import annotations

import asyncio
import pwd
import time

import pytest

from jobcarbon.api.auth import AuthError, Identity, MungeVerifier, check_bearer, uid_resolver

pytestmark = pytest.mark.munge


class OnLoop:
    """``verify`` through ``verify_async`` on an event loop (how credit serve decodes)."""

    def __init__(self, verifier: MungeVerifier) -> None:
        self.verifier = verifier

    def verify(self, credential: str) -> Identity:
        async def run() -> Identity | AuthError:
            done: asyncio.Future[Identity | AuthError] = asyncio.get_running_loop().create_future()
            self.verifier.verify_async(credential, done.set_result)
            return await done

        result = asyncio.run(run())
        if isinstance(result, AuthError):
            raise result
        return result


@pytest.fixture(params=["libmunge", "unmunge", "event-loop"])
def verifier(request: pytest.FixtureRequest, munged) -> MungeVerifier | OnLoop:  # type: ignore[no-untyped-def]
    v = MungeVerifier(munged.socket)
    if request.param == "unmunge":
        v._lib = None  # the binary path, used where libmunge cannot be loaded
    elif v._lib is None:
        pytest.fail("libmunge could not be loaded")
    return OnLoop(v) if request.param == "event-loop" else v


def test_valid_credential_gives_the_callers_uid(verifier, munged) -> None:  # type: ignore[no-untyped-def]
    assert verifier.verify(munged.encode()).uid == 0
    nobody = pwd.getpwnam("nobody")
    assert verifier.verify(munged.encode(as_user="nobody")).uid == nobody.pw_uid


def test_replayed_credential_is_rejected(verifier, munged) -> None:  # type: ignore[no-untyped-def]
    cred = munged.encode()
    verifier.verify(cred)
    with pytest.raises(AuthError, match="replayed") as info:
        verifier.verify(cred)
    assert info.value.status == 401


def test_other_realm_is_rejected(verifier, other_munged) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthError) as info:
        verifier.verify(other_munged.encode())
    assert info.value.status == 401


def test_tampered_credential_is_rejected(verifier, munged) -> None:  # type: ignore[no-untyped-def]
    cred = munged.encode()
    body = cred[6:-1]
    flipped = body[:20] + ("A" if body[20] != "A" else "B") + body[21:]
    with pytest.raises(AuthError) as info:
        verifier.verify(f"MUNGE:{flipped}:")
    assert info.value.status == 401


def test_expired_credential_is_rejected(verifier, munged) -> None:  # type: ignore[no-untyped-def]
    cred = munged.encode(ttl_s=1)
    time.sleep(2.2)
    with pytest.raises(AuthError, match="expired"):
        verifier.verify(cred)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "MUNGE:",
        "not a credential",
        "MUNGE:abc'; DROP TABLE credit_ledger; --:",
        "MUNGE:" + "A" * 5000 + ":",
        "MUNGE:AAAA\x00:",
    ],
)
def test_malformed_credentials_never_reach_munged(bad: str) -> None:
    v = MungeVerifier("/nonexistent/socket")
    with pytest.raises(AuthError) as info:
        v.verify(bad)
    assert info.value.status in (400, 401)


@pytest.mark.parametrize("wrap", [lambda v: v, OnLoop])
def test_unreachable_munged_is_a_503(wrap) -> None:  # type: ignore[no-untyped-def]
    v = wrap(MungeVerifier("/nonexistent/socket"))
    with pytest.raises(AuthError) as info:
        v.verify("MUNGE:AAAA:")
    assert info.value.status == 503


def test_bearer_token() -> None:
    check_bearer("Bearer s3cret", "s3cret")
    for header in (None, "s3cret", "Bearer wrong", "Basic s3cret"):
        with pytest.raises(AuthError) as info:
            check_bearer(header, "s3cret")
        assert info.value.status == 401
    with pytest.raises(AuthError) as info:
        check_bearer("Bearer x", None)
    assert info.value.status == 403


def test_uid_resolver() -> None:
    resolve = uid_resolver({"alice": 4242})
    assert resolve("alice") == 4242
    assert resolve("root") == 0
    assert resolve("no-such-user-xyz") is None
