"""The credit API end to end: real PostgreSQL warehouse, real munged, every security case."""

from __future__ import annotations

import logging
import time

import pytest

from jobcarbon.api import models as m
from jobcarbon.credit.check import co2e_g
from tests.services.credit_api import ADMIN_TOKEN, Api

pytestmark = [pytest.mark.postgres, pytest.mark.munge]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_check_returns_the_numbers(api: Api) -> None:
    r = api.client.post("/v1/check", json=api.body(api.alice), headers=api.cred())
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["user"] == api.alice.user.name and out["decision"] == "allow"
    p = out["prediction"]
    assert p["level"] in ("user+name", "user+partition") and p["samples"] >= 3
    # predicted CO2e = IT energy x PUE 1.3 x 300 g/kWh (no forecast configured)
    assert out["predicted_co2e_g"] == pytest.approx(co2e_g(p["energy_it_j"], 1.3, 300.0))
    assert out["intensity_source"] == "test default"
    assert out["total_co2e_g"] == pytest.approx(
        out["past_co2e_g"] + out["running_co2e_g"] + out["predicted_co2e_g"]
    )
    assert out["available_credit_kg"] == pytest.approx(1_000_000 - out["used_kg"])
    assert out["equivalents"]["train_km"]["value"] == pytest.approx(out["predicted_co2e_g"] / 35.46)
    assert "DESNZ" in out["equivalents"]["train_km"]["source"]


def test_deny_mode_denies(api: Api) -> None:
    r = api.client.post("/v1/check", json=api.body(api.bob), headers=api.cred("daemon"))
    assert r.status_code == 200, r.text
    assert r.json()["decision"] == "deny" and "denied" in r.json()["message"]


def test_reservation_counts_as_running(api: Api) -> None:
    before = api.client.post("/v1/check", json=api.body(api.alice), headers=api.cred()).json()
    body = api.body(api.alice, job_id=77_000_001)
    r = api.client.post("/v1/reservations", json=body, headers=api.cred())
    assert r.status_code == 201, r.text
    assert r.json()["created"] is True
    assert r.json()["co2e_g"] == pytest.approx(before["predicted_co2e_g"])
    again = api.client.post("/v1/reservations", json=body, headers=api.cred())
    assert again.json() == {**r.json(), "created": False}
    after = api.client.post("/v1/check", json=api.body(api.alice), headers=api.cred()).json()
    assert after["running_co2e_g"] == pytest.approx(before["running_co2e_g"] + r.json()["co2e_g"])
    mine = api.client.get("/v1/ledger", params={"user": api.alice.user.name}, headers=api.cred())
    assert mine.status_code == 200
    assert any(e["job_id"] == 77_000_001 for e in mine.json())


def _rejected(caplog: pytest.LogCaptureFixture, status: int) -> None:
    assert any(
        "rejected" in rec.getMessage() and str(status) in rec.getMessage() for rec in caplog.records
    ), [rec.getMessage() for rec in caplog.records]


@pytest.fixture(autouse=True)
def _log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jobcarbon.api")


def test_no_credential(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    r = api.client.post("/v1/check", json=api.body(api.alice))
    assert r.status_code == 401 and "missing X-Munge-Credential" in r.json()["detail"]
    _rejected(caplog, 401)


def test_forged_credential_from_another_realm(
    api: Api,
    other_munged,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    forged = other_munged.encode(as_user="nobody")
    r = api.client.post(
        "/v1/check", json=api.body(api.alice), headers={"X-Munge-Credential": forged}
    )
    assert r.status_code == 401 and "credential" in r.json()["detail"]
    _rejected(caplog, 401)


def test_garbage_and_tampered_credentials(api: Api) -> None:
    cred = api.cred()["X-Munge-Credential"]
    body = cred[6:-1]
    tampered = "MUNGE:" + body[:30] + ("x" if body[30] != "x" else "y") + body[31:] + ":"
    for bad in (tampered, "MUNGE:bm90IGEgY3JlZGVudGlhbA==:", "Bearer nope", "MUNGE:'; --:"):
        r = api.client.post(
            "/v1/check", json=api.body(api.alice), headers={"X-Munge-Credential": bad}
        )
        assert r.status_code in (400, 401), (bad, r.text)


def test_expired_credential(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    headers = api.cred(ttl_s=1)
    time.sleep(2.2)
    r = api.client.post("/v1/check", json=api.body(api.alice), headers=headers)
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    _rejected(caplog, 401)


def test_replayed_credential(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    headers = api.cred()
    assert (
        api.client.post("/v1/check", json=api.body(api.alice), headers=headers).status_code == 200
    )
    r = api.client.post("/v1/check", json=api.body(api.alice), headers=headers)
    assert r.status_code == 401 and "replayed" in r.json()["detail"]
    _rejected(caplog, 401)


def test_another_users_data(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    # nobody's credential (alice) asking about bob
    r = api.client.post("/v1/check", json=api.body(api.bob), headers=api.cred("nobody"))
    assert r.status_code == 403 and "not for user" in r.json()["detail"]
    _rejected(caplog, 403)
    r = api.client.get("/v1/ledger", params={"user": api.bob.user.name}, headers=api.cred())
    assert r.status_code == 403
    # root (uid 0) is nobody's synthetic user either
    r = api.client.post("/v1/check", json=api.body(api.alice), headers=api.cred(os_user="root"))
    assert r.status_code == 403


def test_another_account(api: Api) -> None:
    r = api.client.post(
        "/v1/check", json=api.body(api.alice, account=api.bob.account), headers=api.cred()
    )
    assert r.status_code == 403 and "not one of" in r.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user", "x' OR '1'='1"),
        ("account", "a; DROP TABLE credit_ledger; --"),
        ("partition", "cpu\x00"),
        ("job_name", "name\nwith newline"),
        ("nodes", 10**12),
        ("time_limit_s", -1),
        ("cpus", "many"),
        ("extra", "field"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    api: Api, caplog: pytest.LogCaptureFixture, field: str, value: object
) -> None:
    r = api.client.post("/v1/check", json=api.body(api.alice, **{field: value}), headers=api.cred())
    assert r.status_code == 422, r.text
    assert any(field in d["field"] for d in r.json()["detail"])
    _rejected(caplog, 422)


def test_malformed_and_oversized_requests(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    r = api.client.post(
        "/v1/check",
        content=b"{not json",
        headers={**api.cred(), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    big = api.body(api.alice, job_name="x" * 100_000)
    r = api.client.post("/v1/check", json=big, headers=api.cred())
    assert r.status_code == 413 and "larger than" in r.json()["detail"]
    _rejected(caplog, 413)


def test_admin_endpoints_need_the_token(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, api.cred()):
        r = api.client.get("/v1/admin/ledger", headers=headers)
        assert r.status_code == 401, headers
    _rejected(caplog, 401)
    r = api.client.get("/v1/admin/ledger", headers=ADMIN, params={"limit": 5})
    assert r.status_code == 200 and isinstance(r.json(), list)
    r = api.client.get("/v1/admin/ledger", headers=ADMIN, params={"account": "x' OR 1=1 --"})
    assert r.status_code == 422


def test_admin_policy_update(api: Api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    current = api.client.get("/v1/admin/policy", headers=ADMIN).json()
    bad = api.client.put(
        "/v1/admin/policy",
        headers=ADMIN,
        json={"toml": "[accounts.a]\nallocation_kg = 1\nmode = 'block'"},
    )
    assert bad.status_code == 400 and "accounts.a.mode: 'block'" in bad.json()["detail"]
    ok = api.client.put("/v1/admin/policy", headers=ADMIN, json={"toml": current["toml"]})
    assert ok.status_code == 200 and api.alice.account in ok.json()["accounts"]


def test_admin_adjust_sweep_and_deny_list(api: Api) -> None:
    r = api.client.post(
        "/v1/admin/ledger/adjustments",
        headers=ADMIN,
        json={"account": api.alice.account, "amount_g": -10.0, "note": "refund"},
    )
    assert r.status_code == 201
    r = api.client.post("/v1/admin/ledger/sweep", headers=ADMIN)
    assert r.status_code == 200 and set(r.json()) == {"settled", "released"}
    deny = api.client.get("/v1/admin/deny-list", headers=ADMIN)
    assert deny.status_code == 200
    lines = [ln for ln in deny.text.splitlines() if not ln.startswith("#")]
    assert lines == [api.bob.account]  # over its tiny deny-mode budget; alice's is warn


def test_openapi_is_published(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert {"/v1/check", "/v1/reservations", "/v1/admin/policy"} <= set(spec["paths"])
    assert api.client.get("/healthz").json() == {"status": "ok"}


def test_fast_front_answers_byte_for_byte_as_the_fastapi_route(api: Api) -> None:
    """The thin front (msgspec body decoding, no FastAPI entry, no response re-validation)
    and the FastAPI route give the same bytes (fixed clock), and those are pydantic's for
    the published response model (msgspec encodes them: jobcarbon.api.wire)."""
    app = api.client.app
    bodies = [api.body(api.alice), api.body(api.bob), api.body(api.alice, partition="nope")]
    fast = [api.client.post("/v1/check", json=b, headers=ADMIN) for b in bodies]
    front, app.front = app.front, None  # type: ignore[attr-defined]
    try:
        slow = [api.client.post("/v1/check", json=b, headers=ADMIN) for b in bodies]
    finally:
        app.front = front  # type: ignore[attr-defined]
    for f, s in zip(fast, slow, strict=True):
        assert f.status_code == s.status_code == 200, (f.text, s.text)
        assert f.content == s.content
        model = m.CheckResponse.model_validate_json(f.content)
        assert model.model_dump_json().encode() == f.content
