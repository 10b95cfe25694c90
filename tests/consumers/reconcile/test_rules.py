"""Slurm's accounting rules, with values from real rows (25.05 dump, Debian 22.05 jobs, CSCS)."""

from __future__ import annotations

import pytest

from consumers.reconcile.rules import (
    NO_VAL,
    STEP_BATCH,
    STEP_EXTERN,
    AccountingRowError,
    AssocNode,
    DbStep,
    alloc_tres_text,
    counted_steps,
    db_array,
    db_het,
    decode_exit,
    derived_exit_agrees,
    exit_codes_agree,
    expected_job_energy,
    job_energy,
    lineage_accounts,
    nested_set_accounts,
    parent_accounts_path,
    partition_agrees,
    print_sluid,
    sluid_to_db_inx,
    state_code,
    state_name,
    states_agree,
    usage_energy_j,
    usage_power_w,
)
from schemas.job import EnergyStatus
from schemas.tres import STATIC_TRES_NAMES


def test_job_energy_is_the_3_entry_of_tres_alloc() -> None:
    # CSCS job 87: sacct ConsumedEnergy 1260 = 3= of tres_alloc.
    assert job_energy("1=4,2=1000,3=1260,4=1,5=4").joules == 1260
    # Real 25.05 row: NO_VAL64 -> never measured, sacct prints blank.
    energy = job_energy("1=1,2=94946,3=18446744073709551614,4=1,5=1")
    assert energy.joules is None and energy.status is EnergyStatus.MISSING
    assert energy.reported == "18446744073709551614"
    # The raw form leaves out zero counts: no 3= is 0 J (sacct prints 0).
    assert job_energy("1=1,4=1").joules == 0
    assert job_energy("").joules == 0
    assert job_energy(None).status is EnergyStatus.MISSING


def test_energy_of_1e18_or_more_is_invalid() -> None:
    assert job_energy("3=999999999999999999").joules == 999_999_999_999_999_999
    invalid = job_energy("1=1,3=1000000000000000000")
    assert invalid.status is EnergyStatus.INVALID and invalid.joules is None
    assert invalid.reported == "1000000000000000000"


@pytest.mark.parametrize("text", ["1=1,x=2", "3=-5", "1=1,3=12J", "'; DROP TABLE t; --", "3=\x00"])
def test_unreadable_tres_alloc_names_the_column(text: str) -> None:
    with pytest.raises(AccountingRowError, match=r"job_table\.tres_alloc"):
        job_energy(text)


def test_contain_counts_only_the_extern_step() -> None:
    # CSCS santis job 38113 (sacct -P in shared/data): job 20543125 J = the extern step.
    steps = [
        DbStep(id_step=STEP_BATCH, consumed_energy=5_094_129),
        DbStep(id_step=STEP_EXTERN, consumed_energy=20_543_125),
        DbStep(id_step=0, consumed_energy=20_536_917),
    ]
    assert [s.label for s in counted_steps(steps, contain=True)] == ["extern"]
    assert expected_job_energy(steps).joules == 20_543_125  # Contain inferred from extern
    # Without Contain: every step but batch (step 0 only here).
    assert expected_job_energy(steps, contain=False).joules == 20_536_917


def test_without_contain_a_batch_only_job_has_no_energy() -> None:
    steps = [DbStep(id_step=STEP_BATCH, consumed_energy=408)]
    assert expected_job_energy(steps, contain=False).status is EnergyStatus.MISSING


def test_step_usage_fields_joules_in_watts_out() -> None:
    # Real Debian 22.05 batch step at 100 W fake pm_counters (job 1, 4 s).
    assert usage_energy_j("1=0,2=3137536,3=408,6=11083,7=5644288,8=0") == 408
    assert usage_power_w("3=65,6=1") == 65
    assert usage_energy_j("1=3599260,2=1130496") is None
    assert usage_power_w("3=18446744073709551614") is None


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0, "PENDING"),
        (3, "COMPLETED"),
        (4, "CANCELLED"),
        (5, "FAILED"),
        (6, "TIMEOUT"),
        (8, "PREEMPTED"),
        (11, "OUT_OF_MEMORY"),
        (1024, "REQUEUED"),
        (8192, "RESIZING"),
        (524288, "REVOKED"),
    ],
)
def test_state_int_and_string(code: int, name: str) -> None:
    assert state_name(code) == name
    assert state_code(name) == code


def test_state_odd_values() -> None:
    assert state_code("CANCELLED by 0") == 4
    with pytest.raises(AccountingRowError, match=r"job_table\.state 99"):
        state_name(99)
    with pytest.raises(ValueError, match="'RUNNING; DROP'"):
        state_code("RUNNING; DROP")


def test_requeued_run_says_pending_in_jobcomp() -> None:
    assert states_agree("PENDING", 1024)
    assert states_agree("PREEMPTED", 8)
    assert states_agree("COMPLETED", 3)
    assert not states_agree("FAILED", 3)
    assert not states_agree("PENDING", 3)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (0, "0:0"),
        (256, "1:0"),
        (9, "0:9"),
        (15, "0:15"),
        (253, "0:125"),
        (NO_VAL, "0:0"),
        (-2, "0:0"),
        (2 << 8, "2:0"),
        (None, "0:0"),
    ],
)
def test_decode_exit(raw: int | None, text: str) -> None:
    assert decode_exit(raw) == text


def test_exit_code_1_becomes_256_in_the_db() -> None:
    assert exit_codes_agree("0:1", 256)  # record's raw 1, slurmdbd's rewrite
    assert exit_codes_agree("1:0", 256)
    assert exit_codes_agree("0:1", 1)
    assert not exit_codes_agree("0:0", 256)
    assert exit_codes_agree(None, 256)


def test_derived_exit_may_be_higher_in_the_db() -> None:
    assert derived_exit_agrees("0:0", 256)  # a step finished after the record
    assert not derived_exit_agrees("2:0", 256)


def test_array_and_het_sentinels() -> None:
    assert db_array(0, 4294967294) == (None, None)
    assert db_array(4, 1) == (4, 1)
    assert db_array(4, NO_VAL) == (4, None)  # meta record with unsplit tasks
    assert db_het(0, 4294967294) == (None, None)  # Kafka sends 0/0, ingest makes None/None
    assert db_het(100, 0) == (100, 0)
    assert db_het(100, 2) == (100, 2)


def test_partition_list_vs_ran_in() -> None:
    assert partition_agrees("debug", None, "debug")
    assert partition_agrees(None, ["debug", "other"], "other")  # <= 24.11 comma list
    assert not partition_agrees("debug", None, "other")
    assert not partition_agrees(None, ["a", "b"], "c")
    assert partition_agrees(None, None, "debug")


def test_lineage_23_11_and_nested_sets_before() -> None:
    # Real 25.05 dump, rromero's association.
    assert lineage_accounts("/ucmerced/oit/0-rromero/") == ("ucmerced", "oit")
    assert lineage_accounts("/0-root/") == ()
    assert lineage_accounts(None) == ()
    # Real 22.05 tree written by slurmdbd: root(1,14) > proj1(2,11) > proj2(5,10).
    accounts = [AssocNode("root", 1, 14), AssocNode("proj1", 2, 11), AssocNode("proj2", 5, 10)]
    assert nested_set_accounts(6, 7, accounts) == ("proj1", "proj2")  # nobody @ proj2
    assert nested_set_accounts(3, 4, accounts) == ("proj1",)  # root @ proj1
    # jobcomp's parent_accounts repeats the leaf account for a user association.
    assert parent_accounts_path("/root/ucmerced/oit/oit") == ("ucmerced", "oit")


def test_sluid_is_the_printed_job_db_inx() -> None:
    # The first job of the real 25.05 dump (docs §3, row 1a).
    assert sluid_to_db_inx("sBN9K1KW4S9000") == 13449544672876986368
    assert print_sluid(13449544672876986368) == "sBN9K1KW4S9000"
    assert sluid_to_db_inx("sbn9k1kw4s9000") == 13449544672876986368
    for bad in ("BN9K1KW4S9000", "sBN9K1KW4S90U0", "s" + "Z" * 13, "s'; --"):
        with pytest.raises(ValueError, match="sluid"):
            sluid_to_db_inx(bad)


def test_alloc_tres_as_sacct_prints_it() -> None:
    # CSCS job 87 and santis job 38113: the sacct AllocTRES column, character for character.
    assert (
        alloc_tres_text("1=4,2=1000,3=1260,4=1,5=4", STATIC_TRES_NAMES)
        == "billing=4,cpu=4,energy=1260,mem=1000M,node=1"
    )
    assert (
        alloc_tres_text("1=1152,2=1840000,3=20543125,4=4,5=1152", STATIC_TRES_NAMES)
        == "billing=1152,cpu=1152,energy=20543125,mem=1840000M,node=4"
    )
    assert alloc_tres_text("1=1,3=18446744073709551614,4=1", STATIC_TRES_NAMES) == "cpu=1,node=1"
    assert alloc_tres_text("1=1,2=4096", STATIC_TRES_NAMES) == "cpu=1,mem=4G"
