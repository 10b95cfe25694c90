"""Ingest: every documented jobcomp quirk, written from the record format of
``shared/docs/slurm-jobcomp-record.md``, normalizes correctly; bad input is rejected with a
stable reason and a detail naming the field and value."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.ingest import Reason, Rejection, normalize_bytes
from schemas.job import EnergySource, EnergyStatus, JobRecord

NO_VAL = 4294967294
NO_VAL64 = 18446744073709551614

# The CSCS slide record (job 87), verbatim, with its spaces in the TRES strings (§9).
CSCS_SLIDE = b"""{
"jobid":87,
"container":null, "username":"jg", "user_id":1000, "groupname":"jg",
"group_id":1000, "@start":"2023-11-20T11:53:40", "@end":"2023-11-20T11:53:47",
"elapsed":7, "partition":"normal", "alloc_node":"jg", "nodes":"jg",
"total_cpus":4, "total_nodes":1, "derived_ec":"0:0", "exit_code":"0:0",
"state":"COMPLETED", "failed_node":null, "cpu_hours":0.0077777779661118984,
"pack_job_id":0, "pack_job_offset":0, "het_job_id":0, "het_job_offset":0,
"@submit":"2023-11-20T11:53:40", "@eligible":"2023-11-20T11:53:40",
"@queue_wait":0, "work_dir":"\\/home\\/jg", "qos":"normal", "ntasks":0,
"ntasks_per_node":0, "ntasks_per_tres":0, "cpus_per_task":1, "time_limit":3600,
"job_name":"sleep",

"tres_req":"cpu=1, mem=1000M, node=1, billing=1",

"tres_fmt_alloc_str":"cpu=4, mem=1000M, energy=1260, node=1, billing=4",
"tres_alloc_str":"1=4, 2=1000, 3=1260, 4=1, 5=4"
}"""


def upstream_24_11(**changes: Any) -> dict[str, Any]:
    """Job 87 as a 24.05.1-25.11 system would send it (§9, code-derived shape)."""
    rec: dict[str, Any] = {
        "jobid": 87,
        "container": None,
        "username": "jg",
        "user_id": 1000,
        "groupname": "jg",
        "group_id": 1000,
        "@start": "2023-11-20T11:53:40",
        "@end": "2023-11-20T11:53:47",
        "elapsed": 7,
        "partition": "normal",
        "alloc_node": "jg",
        "nodes": "jg",
        "total_cpus": 4,
        "total_nodes": 1,
        "derived_ec": "0:0",
        "exit_code": "0:0",
        "state": "COMPLETED",
        "failed_node": None,
        "cpu_hours": 0.0077777779661118984,
        "pack_job_id": 0,
        "pack_job_offset": 0,
        "het_job_id": 0,
        "het_job_offset": 0,
        "priority": 1,
        "@submit": "2023-11-20T11:53:40",
        "@eligible": "2023-11-20T11:53:40",
        "@queue_wait": 0,
        "work_dir": "/home/jg",
        "cluster": "daint",
        "qos": "normal",
        "ntasks": 0,
        "ntasks_per_node": 0,
        "ntasks_per_tres": 0,
        "cpus_per_task": 1,
        "time_limit": 3600,
        "job_name": "sleep",
        "tres_req_raw": "1=1,2=1000,4=1,5=1",
        "tres_req": "cpu=1,mem=1000M,node=1,billing=1",
        "tres_alloc_raw": "1=4,2=1000,3=1260,4=1,5=4",
        "tres_alloc": "cpu=4,mem=1000M,energy=1260,node=1,billing=4",
        "account": "proj1",
        "parent_accounts": "/root/proj1/proj1",
    }
    for key, value in changes.items():
        if value is _DROP:
            rec.pop(key.replace("AT_", "@"), None)
        else:
            rec[key.replace("AT_", "@")] = value
    return rec


_DROP = object()


def encode(rec: dict[str, Any], *, json_c: bool = True, nul: bool = False) -> bytes:
    body = json.dumps(rec, separators=(",", ":")).encode()
    if json_c:
        body = body.replace(b"/", b"\\/")
    return body + (b"\x00" if nul else b"")


def ok(value: bytes, **kwargs: Any) -> JobRecord:
    result = normalize_bytes(value, **kwargs)
    assert isinstance(result, JobRecord), result
    return result


def rejected(value: bytes) -> Rejection:
    result = normalize_bytes(value)
    assert isinstance(result, Rejection), result
    assert result.reason in Reason.ALL
    assert result.raw == value
    return result


# -- the real captured record ------------------------------------------------------------


def test_cscs_slide_record_with_trailing_nul() -> None:
    record = ok(CSCS_SLIDE + b"\x00", default_cluster="jg-box")
    assert record.job_id == 87
    assert record.cluster == "jg-box"  # no accounting: no cluster key
    assert record.energy_j == 1260
    assert record.energy_status is EnergyStatus.MEASURED
    assert record.energy_source is EnergySource.TRES_RAW
    assert record.cpus == 4 and record.mem_mb == 1000 and record.node_count == 1
    assert record.tres_req == {"cpu": 1, "mem": 1000, "node": 1, "billing": 1}
    assert record.slurm_layout == "cscs-23.11.0+nul"
    assert record.submit_time == datetime(2023, 11, 20, 11, 53, 40, tzinfo=UTC)
    assert record.elapsed_s == 7
    assert record.het_job_id is None and record.array_job_id is None
    assert record.key == ("jg-box", 87, 1700481220)


def test_upstream_24_11_record() -> None:
    record = ok(encode(upstream_24_11()))
    assert record.cluster == "daint"
    assert record.account == "proj1"
    assert record.energy_j == 1260
    assert record.partition == "normal"
    assert record.user == "jg" and record.user_id == 1000
    assert record.tres_alloc["billing"] == 4
    assert record.slurm_layout == "23.11.1+"
    assert not record.patched


def test_json_c_slash_escapes_are_read() -> None:
    record = ok(encode(upstream_24_11(parent_accounts="/root/a/b"), json_c=True))
    assert record.parent_accounts == "/root/a/b"


# -- timestamps --------------------------------------------------------------------------


@pytest.mark.parametrize("sentinel", ["Unknown", "None", ""])
def test_unknown_and_none_timestamps_are_missing(sentinel: str) -> None:
    record = ok(encode(upstream_24_11(AT_start=sentinel, AT_eligible=sentinel)))
    assert record.start_time is None and record.eligible_time is None


def test_left_out_timestamps_are_missing() -> None:
    record = ok(encode(upstream_24_11(AT_start=_DROP, AT_eligible=_DROP, AT_queue_wait=_DROP)))
    assert record.start_time is None


def test_timestamps_are_utc_and_written_with_an_offset() -> None:
    line = ok(encode(upstream_24_11())).to_json()
    doc = json.loads(line)
    parsed = datetime.fromisoformat(doc["submit_time"])
    assert parsed.utcoffset() is not None and parsed == datetime(
        2023, 11, 20, 11, 53, 40, tzinfo=UTC
    )


def test_missing_submit_time_is_rejected_as_incomplete_key() -> None:
    result = rejected(encode(upstream_24_11(AT_submit="Unknown")))
    assert result.reason == Reason.MISSING_KEY
    assert "@submit" in result.detail and "jobid=87" in result.detail


def test_patch_submit_epoch_stands_in_for_submit() -> None:
    record = ok(
        encode(upstream_24_11(AT_submit=_DROP, submit_epoch=1700481220, energy_complete=True))
    )
    assert record.key.submit_epoch == 1700481220


# -- sentinels and energy ------------------------------------------------------------------


def test_no_val_sentinels_are_missing() -> None:
    record = ok(encode(upstream_24_11(time_limit=4294967295, priority=NO_VAL, cpus_per_task=65534)))
    assert record.time_limit_s is None


def test_raw_energy_no_val64_is_missing_not_zero() -> None:
    rec = upstream_24_11(
        tres_alloc_raw=f"1=4,2=1000,3={NO_VAL64},4=1,5=4", tres_alloc="cpu=4,mem=1000M,node=1"
    )
    record = ok(encode(rec))
    assert record.energy_j is None
    assert record.energy_status is EnergyStatus.MISSING
    assert record.energy_reported == str(NO_VAL64)
    assert "energy" not in record.tres_alloc


@pytest.mark.parametrize("bogus", [10**18, 2**63 + 5, 18446744073709551000])
def test_energy_of_1e18_or_more_is_invalid_and_flagged(bogus: int) -> None:
    rec = upstream_24_11(tres_alloc_raw=f"1=4,2=1000,3={bogus},4=1,5=4")
    record = ok(encode(rec))
    assert record.energy_j is None
    assert record.energy_status is EnergyStatus.INVALID
    assert record.energy_reported == str(bogus)


def test_energy_just_below_1e18_is_measured() -> None:
    rec = upstream_24_11(tres_alloc_raw=f"1=4,3={10**18 - 1}", tres_alloc="cpu=4")
    assert ok(encode(rec)).energy_j == 10**18 - 1


def test_raw_without_energy_means_zero_joules() -> None:
    rec = upstream_24_11(tres_alloc_raw="1=4,2=1000,4=1,5=4", tres_alloc="cpu=4,mem=1000M")
    record = ok(encode(rec))
    assert record.energy_j == 0 and record.energy_status is EnergyStatus.MEASURED


def test_23_02_formatted_only_without_energy_is_missing() -> None:
    rec = upstream_24_11(tres_alloc_raw=_DROP, tres_req_raw=_DROP, tres_alloc="cpu=4,mem=1000M")
    record = ok(encode(rec, nul=True))
    assert record.energy_status is EnergyStatus.MISSING
    assert record.slurm_layout == "23.02-23.11.0+nul"


def test_23_02_formatted_energy_is_used() -> None:
    rec = upstream_24_11(tres_alloc_raw=_DROP, tres_alloc="cpu=4,energy=777")
    record = ok(encode(rec, nul=True))
    assert record.energy_j == 777 and record.energy_source is EnergySource.TRES_FORMATTED


def test_keys_left_out_or_null() -> None:
    minimal = {"jobid": 5, "@submit": "2024-01-01T00:00:00", "state": "COMPLETED"}
    record = ok(encode(minimal))
    assert record.user is None and record.energy_status is EnergyStatus.MISSING
    nulls = upstream_24_11(username=None, partition=None, nodes=None, account=None, cluster=None)
    assert ok(encode(nulls)).cluster is None


def test_empty_tres_strings_are_missing() -> None:
    record = ok(encode(upstream_24_11(tres_alloc_raw="", tres_alloc=" ")))
    assert record.tres_alloc == {} and record.energy_status is EnergyStatus.MISSING


# -- versions and layouts ------------------------------------------------------------------


def test_unknown_keys_are_kept() -> None:
    record = ok(encode(upstream_24_11(future_field={"a": [1, 2]}, site_tag="x")))
    assert record.extra == {"future_field": {"a": [1, 2]}, "site_tag": "x"}


def test_partition_list_before_25_05() -> None:
    record = ok(encode(upstream_24_11(partition="normal,debug")))
    assert record.partition is None
    assert record.partitions_requested == ["normal", "debug"]


def test_array_task() -> None:
    record = ok(encode(upstream_24_11(jobid=1007, array_job_id=1000, array_task_id=7)))
    assert (record.array_job_id, record.array_task_id) == (1000, 7)


def test_het_job_component() -> None:
    rec = upstream_24_11(
        jobid=201, het_job_id=200, het_job_offset=1, pack_job_id=200, pack_job_offset=1
    )
    record = ok(encode(rec))
    assert (record.het_job_id, record.het_job_offset) == (200, 1)


def test_het_leader_offset_zero_is_kept() -> None:
    record = ok(encode(upstream_24_11(jobid=200, het_job_id=200, het_job_offset=0)))
    assert (record.het_job_id, record.het_job_offset) == (200, 0)


def test_26_05_sluid() -> None:
    record = ok(encode(upstream_24_11(sluid="sBN9K1KW4S9000", original_sluid="sBN9K1KW4S9000")))
    assert record.sluid == "sBN9K1KW4S9000"
    assert record.slurm_layout == "26.05+"


def test_25_05_job_start_event() -> None:
    start = upstream_24_11()
    for key in ("@end", "elapsed", "derived_ec", "exit_code", "failed_node", "cpu_hours"):
        start.pop(key)
    start.update(state=None, tres_alloc_raw=f"1=4,2=1000,3={NO_VAL64},4=1", tres_alloc="cpu=4")
    for key in ("pack_job_id", "pack_job_offset"):
        start.pop(key)
    record = ok(encode(start))
    assert record.event == "start"
    assert record.energy_status is EnergyStatus.MISSING and record.end_time is None


def test_patched_record_fields() -> None:
    rec = upstream_24_11(
        energy_j=1260,
        energy_complete=False,
        job_db_inx="13449544672876986368",
        submit_epoch=1700481220,
        event="end",
        exclusive=True,
    )
    record = ok(encode(rec), headers={"jobcarbon-schema": b"1"})
    assert record.patched and record.energy_complete is False
    assert record.job_db_inx == 13449544672876986368  # over int64: sent as a string
    assert record.energy_source is EnergySource.PATCH
    assert record.exclusive is True


def test_patched_null_energy_is_missing_even_if_tres_has_none() -> None:
    rec = upstream_24_11(energy_j=None, energy_complete=False, submit_epoch=1700481220)
    record = ok(encode(rec))
    assert record.energy_status is EnergyStatus.MISSING
    assert record.energy_source is EnergySource.PATCH


def test_patched_energy_update_event() -> None:
    rec = upstream_24_11(
        energy_j=2000, energy_complete=True, submit_epoch=1700481220, event="energy_update"
    )
    assert ok(encode(rec)).event == "energy_update"


def test_pre_23_11_9_unknown_start_for_pending_cancel() -> None:
    rec = upstream_24_11(
        AT_start="Unknown", elapsed=0, state="CANCELLED", nodes=None, total_nodes=0
    )
    record = ok(encode(rec, nul=True))
    assert record.start_time is None and record.state == "CANCELLED"


# -- rejections ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", Reason.EMPTY),
        (b"\x00", Reason.EMPTY),
        (b"   \n", Reason.EMPTY),
        (b"\xff\xfe{}", Reason.UNDECODABLE),
        (b'{"jobid": 1', Reason.INVALID_JSON),
        (b"[1, 2]", Reason.NOT_AN_OBJECT),
        (b'"jobid"', Reason.NOT_AN_OBJECT),
        (b"{}", Reason.MISSING_FIELD),
        (b'{"jobid": "abc", "@submit": "2024-01-01T00:00:00"}', Reason.INVALID_FIELD),
        (b'{"jobid": 0, "@submit": "2024-01-01T00:00:00"}', Reason.INVALID_FIELD),
        (b'{"jobid": 1, "@submit": "yesterday"}', Reason.INVALID_FIELD),
        (b'{"jobid": 1, "@submit": "2024-01-01T00:00:00", "user_id": -1}', Reason.INVALID_FIELD),
        (
            b'{"jobid": 1, "@submit": "2024-01-01T00:00:00", "total_cpus": 5e9}',
            Reason.INVALID_FIELD,
        ),
        (
            b'{"jobid": 1, "@submit": "2024-01-01T00:00:00", "tres_alloc": "cpu=x"}',
            Reason.INVALID_TRES,
        ),
        (
            b'{"jobid": 1, "@submit": "2024-01-01T00:00:00", "job_name": "a\\u0000b"}',
            Reason.NUL_IN_STRING,
        ),
        (b"[" * 10_000 + b"]" * 10_000, Reason.INVALID_JSON),
    ],
)
def test_bad_input_is_rejected_with_a_stable_reason(value: bytes, reason: str) -> None:
    assert rejected(value).reason == reason


def test_rejection_detail_names_field_and_value() -> None:
    result = rejected(b'{"jobid": 1, "@submit": "2024-01-01T00:00:00", "total_nodes": "many"}')
    assert "total_nodes" in result.detail and "'many'" in result.detail
    tres = rejected(b'{"jobid": 1, "@submit": "2024-01-01T00:00:00", "tres_req": "cpu=1,mem=lots"}')
    assert "tres_req" in tres.detail and "mem='lots'" in tres.detail


def test_oversized_record_is_rejected() -> None:
    big = encode(upstream_24_11(script="x" * 2000))
    result = normalize_bytes(big, max_bytes=1000)
    assert isinstance(result, Rejection) and result.reason == Reason.OVERSIZED
    assert str(len(big)) in result.detail


def test_rejection_json_line_keeps_raw_bytes() -> None:
    result = rejected(b"\xff\xfe not utf8")
    doc = json.loads(result.to_json_line())
    assert doc["reason"] == Reason.UNDECODABLE and doc["raw_encoding"] == "base64"
    import base64

    assert base64.b64decode(doc["raw"]) == b"\xff\xfe not utf8"


@pytest.mark.parametrize(
    "nasty",
    [
        "'; DROP TABLE fact_job; --",
        'Robert"); DELETE FROM users;--',
        "\u202eevil\u202c",
        "😀" * 100,
        "<script>alert(1)</script>",
        "line\nbreak\ttab",
        "x" * 100_000,
    ],
)
def test_adversarial_strings_pass_through_as_data(nasty: str) -> None:
    record = ok(encode(upstream_24_11(job_name=nasty, account=nasty, username=nasty)))
    assert record.job_name == nasty and record.account == nasty


def test_adversarial_value_in_detail_is_escaped_and_bounded() -> None:
    value = json.dumps({"jobid": 1, "@submit": "2024-01-01T00:00:00", "user_id": "\n" + "A" * 5000})
    result = rejected(value.encode())
    assert "\n" not in result.detail and len(result.detail) < 400


@pytest.mark.parametrize("value", ["null", '""', '"-1"', '"x"', "18446744073709551616"])
def test_odd_job_db_inx_never_crashes(value: str) -> None:
    # Regression (found by hypothesis on a fresh clone): null met a pydantic constraint as
    # a TypeError instead of a validation error.
    body = b'{"jobid":1,"@submit":"2024-01-01T00:00:00","job_db_inx":' + value.encode() + b"}"
    result = normalize_bytes(body)
    if value == "null":
        assert isinstance(result, JobRecord) and result.job_db_inx is None
    else:
        assert isinstance(result, Rejection) and result.reason == Reason.INVALID_FIELD
        assert "job_db_inx" in result.detail


def test_python_field_names_are_not_wire_keys() -> None:
    # Regression (property test): "end" is an unknown key, not the model's name for "@end".
    record = ok(encode(upstream_24_11(end=False, submit="x")))
    assert record.end_time is not None
    assert record.extra == {"end": False, "submit": "x"}


def test_nul_locator_reads_what_the_model_accepts() -> None:
    # Regression (property test on the slurmpatch branch): Infinity plus an escaped NUL.
    body = b'{"jobid":1,"@submit":"2024-01-01T00:00:00","cpu_hours":Infinity,"x":"\\u0000"}'
    assert rejected(body).reason == Reason.NUL_IN_STRING


def test_cluster_comes_from_the_patch_key_when_the_record_has_none() -> None:
    rec = upstream_24_11(cluster=_DROP)
    assert ok(encode(rec), key=b"alps:87:1700481220", default_cluster="topic").cluster == "alps"
    assert ok(encode(rec), key=b"garbage", default_cluster="topic").cluster == "topic"
    assert ok(encode(rec), key=b"\xff:1:2", default_cluster="topic").cluster == "topic"
    # The record's own cluster wins over the key.
    assert ok(encode(upstream_24_11()), key=b"other:87:1").cluster == "daint"


@pytest.mark.parametrize("jobid", ["true", '"7"', "7.0"])
def test_jobid_must_be_a_json_integer(jobid: str) -> None:
    # Regression (fault-injection mix): `"jobid": true` was read as job 1 (pydantic lax mode).
    body = b'{"jobid":' + jobid.encode() + b',"@submit":"2024-01-01T00:00:00"}'
    result = rejected(body)
    assert result.reason == Reason.INVALID_FIELD and "jobid" in result.detail


def test_escaped_backslash_before_u0000_is_text_not_a_nul() -> None:
    """``\\\\u0000`` in the bytes is a backslash followed by the text ``u0000``: no NUL, so the
    record is normalized (the byte screen only hints; the decoded strings decide)."""
    body = b'{"jobid": 1, "@submit": "2024-01-01T00:00:00", "job_name": "a\\\\u0000b"}'
    assert ok(body).job_name == "a\\u0000b"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"jobid": 1, "@submit": "2024-01-01T00:00:00", "x": {"": "\\u0000"}}', "x."),
        (b'{"jobid": 1, "@submit": "2024-01-01T00:00:00", "": "a\\u0000"}', "<record>"),
        (b'{"jobid": 1, "@submit": "2024-01-01T00:00:00", "x": ["ok", "\\u0000"]}', "x[1]"),
    ],
)
def test_nul_is_found_under_empty_keys_and_in_lists(body: bytes, where: str) -> None:
    rejection = rejected(body)
    assert rejection.reason == Reason.NUL_IN_STRING
    assert rejection.detail == f"field {where} contains a NUL character"
