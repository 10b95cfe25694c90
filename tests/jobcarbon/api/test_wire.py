"""The msgspec bodies of POST /v1/check against the pydantic models they stand for: the fast
decoder accepts nothing pydantic refuses and gives the same values; the encoder writes
pydantic's bytes for any values."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from jobcarbon.api import models as m
from jobcarbon.api import wire

VALID = {"user": "alice", "account": "proj", "partition": "cpu", "nodes": 2, "cpus": 64,
         "gpus": 0, "time_limit_s": 3600, "job_name": "lmp run"}  # fmt: skip

names = st.one_of(
    st.sampled_from(["alice", "a", "_x", "x.y-z", "alice\n", "\nalice", "al ice", "-x", "",
                     "é", "a" * 64, "a" * 65, "x' OR '1'='1", "cpu\x00"]),
    st.text(max_size=70),
)  # fmt: skip
ints = st.one_of(
    st.integers(min_value=-5, max_value=10**8),
    st.sampled_from([0, 1, 100_000, 100_001, 10_000_000, 10_000_001, 366 * 86_400,
                     366 * 86_400 + 1, 7 * 86_400, 2**63, 10**30, -(2**70)]),
    st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
    st.text(max_size=5), st.sampled_from(["1", "1.0", 1.0, 2.5]),
)  # fmt: skip
job_names = st.one_of(
    st.text(max_size=260),
    st.sampled_from(["", "ok", "line\n", "tab\t", "x" * 256, "x" * 257, "\x7f", "😀" * 256]),
)
fields = {
    "user": names, "account": names, "partition": names, "cluster": st.none() | names,
    "nodes": ints, "cpus": ints, "gpus": ints, "time_limit_s": ints, "job_name": job_names,
    "max_delay_s": ints,
}  # fmt: skip


@st.composite
def bodies(draw: Any) -> dict[str, Any]:
    body = dict(VALID)
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=4, unique=True)):
        body[name] = draw(fields[name])
    for name in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=2, unique=True)):
        body.pop(name, None)
    if draw(st.booleans()) and draw(st.booleans()):
        body[draw(st.sampled_from(["extra", "User", "job_id"]))] = 1
    return body


def test_a_plain_body_takes_the_fast_path() -> None:
    got = wire.decode_check(json.dumps(VALID).encode())
    assert got is not None
    assert msgspec.structs.asdict(got) == m.CheckRequest.model_validate(VALID).model_dump()


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(body=bodies())
def test_the_fast_decoder_accepts_a_subset_of_pydantic_with_equal_values(
    body: dict[str, Any],
) -> None:
    raw = json.dumps(body).encode()
    fast = wire.decode_check(raw)
    try:
        slow = m.CheckRequest.model_validate(json.loads(raw)).model_dump()
    except ValidationError:
        slow = None
    if fast is not None:
        assert slow is not None, (body, fast)
        assert msgspec.structs.asdict(fast) == slow


def test_malformed_json_is_left_to_the_slow_path() -> None:
    for raw in (b"{not json", b"[1]", b'{"user": NaN}', b"", b'{"user":"a"}x'):
        assert wire.decode_check(raw) is None


floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 1e15, 9999999999999998.0, 1e16, 1.5e17, 1e-5, 1e-7,
                     123456.789, 5e-324]),
)  # fmt: skip
texts = st.text(max_size=30) | st.sampled_from(["1e5 km", "x1e16", 'a"b\\c', "\u2028"])
times = st.integers(min_value=0, max_value=10**15).map(
    lambda us: datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
)


def _text_ok(value: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)  # neither can encode those


responses = st.builds(
    wire.CheckResponse,
    user=texts.filter(_text_ok), account=texts.filter(_text_ok), checked_at=times,
    past_window_days=floats, past_co2e_g=floats, running_co2e_g=floats,
    predicted_co2e_g=floats, predicted_co2e_low_g=floats, predicted_co2e_high_g=floats,
    total_co2e_g=floats, average_rate_g_per_kwh=st.none() | floats,
    budget_kg=st.none() | floats, used_kg=st.none() | floats,
    available_credit_kg=st.none() | floats, intensity_g_per_kwh=floats,
    intensity_source=texts.filter(_text_ok), pue=floats,
    prediction=st.builds(wire.Prediction, floats, floats, floats, floats,
                         st.sampled_from(["user+name", "default"]), st.integers(0, 300)),
    equivalents=st.dictionaries(
        texts.filter(_text_ok),
        st.builds(wire.Equivalent, floats, texts.filter(_text_ok), texts.filter(_text_ok),
                  texts.filter(_text_ok)),
        max_size=3,
    ),
    decision=st.sampled_from(["allow", "warn", "deny"]), message=texts.filter(_text_ok),
    suggested_begin=st.none() | st.just("now+3600"),
    greener=st.none() | st.builds(wire.Greener, times, st.none() | st.just("now+60"), floats,
                                  floats, floats),
)  # fmt: skip


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(response=responses)
def test_the_encoder_writes_pydantics_bytes(response: wire.CheckResponse) -> None:
    fast = wire.encode_check(response)
    model = m.CheckResponse.model_validate(msgspec.to_builtins(response))
    assert fast == model.model_dump_json().encode()


def test_large_floats_are_written_as_pydantic_writes_them() -> None:
    base = wire.CheckResponse(
        "alice", "proj", datetime(2026, 1, 1, tzinfo=UTC), 28.0, *([1.0] * 6), None, None, None,
        None, 300.0, "default", 1.3, wire.Prediction(1.0, 0.5, 2.0, 60.0, "default", 0), {},
        "allow", "ok", None, None,
    )  # fmt: skip
    big = msgspec.structs.replace(base, predicted_co2e_high_g=1.5e17, total_co2e_g=math.inf)
    out = wire.encode_check(big)
    assert b'"predicted_co2e_high_g":1.5e+17' in out and b'"total_co2e_g":null' in out
    assert wire.encode_check(base) == msgspec.json.encode(base)  # the fast bytes, unchanged
