"""Property tests: every input ends as exactly one JobRecord or Rejection, never an
exception; and the fast path agrees with the pydantic model (the authority) on every input."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from consumers.ingest import Reason, Rejection, normalize, normalize_bytes
from schemas.job import JobRecord
from schemas.raw import KNOWN_KEYS, RawJobcompRecord, fast_record
from schemas.tres import TresParseError

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
field_values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-5, max_value=2**64 + 5)
    | st.sampled_from([0, 1, 4294967294, 4294967295, 65534, 18446744073709551614, 10**18])
    | st.floats(allow_nan=False)
    | st.sampled_from(
        [
            "",
            "Unknown",
            "None",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00Z",
            "cpu=4,mem=1G",
            "1=4,3=1260",
            "1=4, 3=18446744073709551614",
            "cpu=x",
            "123",
            "a\x00b",
        ]
    )
    | st.text(max_size=20)
)
records = st.dictionaries(
    st.sampled_from(sorted(KNOWN_KEYS)) | st.text(max_size=8), field_values, max_size=25
).map(lambda d: {"jobid": 7, "@submit": "2024-01-01T00:00:00", **d})


def _check_one_result(value: bytes) -> None:
    result = normalize_bytes(value, default_cluster="c")
    assert isinstance(result, JobRecord | Rejection)
    if isinstance(result, Rejection):
        assert result.reason in Reason.ALL
        assert result.reason != Reason.INTERNAL_ERROR, result.detail
        assert result.raw == value
        assert result.detail
        result.to_json_line()
    else:
        result.to_json()


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_end_as_one_result(value: bytes) -> None:
    _check_one_result(value)


@SETTINGS
@given(json_values)
def test_arbitrary_json_ends_as_one_result(doc: Any) -> None:
    _check_one_result(json.dumps(doc).encode())


@SETTINGS
@given(records)
def test_record_shaped_json_ends_as_one_result(doc: dict[str, Any]) -> None:
    _check_one_result(json.dumps(doc).encode())


def _model_result(body: bytes) -> Any:
    try:
        raw = RawJobcompRecord.model_validate_json(body)
    except ValidationError:
        return "invalid"
    try:
        return normalize(raw, raw.extra_fields)
    except TresParseError:
        return "tres"


@SETTINGS
@given(records)
def test_fast_path_agrees_with_the_model(doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    fast = fast_record(body)
    if fast is None:
        return  # the model decides these itself
    fields = msgspec.structs.asdict(fast[0])
    for name, value in fields.items():
        if value is not None:  # every value has the model's declared type
            declared = str(RawJobcompRecord.model_fields[name].annotation)
            assert type(value).__name__ in declared, (name, value, declared)
    raw = RawJobcompRecord.model_validate_json(body)  # raises if the fast path was too lax
    assert fields == raw.field_values()  # every field, used by normalize or not
    assert fast[1] == raw.extra_fields
    expected = _model_result(body)
    try:
        got: Any = normalize(*fast)
    except TresParseError:
        got = "tres"
    assert got == expected
