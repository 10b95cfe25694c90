"""Slurm's accounting rules, as pure functions over plain values (no database, no clock).

Everything here is what ``sacct`` and slurmdbd do with the raw columns of
``<cluster>_job_table`` / ``<cluster>_step_table`` (``shared/docs/slurm-jobcomp-record.md``
sections 5-8, 11-13):

* job energy = the ``3=`` entry of ``job_table.tres_alloc`` (what sacct prints as
  ConsumedEnergyRaw); NO_VAL64 = never measured (sacct prints blank); 1e18 J or more = invalid;
  absent = 0 J (the raw form leaves out only zero counts);
* the job value is the sum of the *counted* steps: under ``PrologFlags=Contain`` only the
  extern step, otherwise every completed step but the batch step;
* step energy: ``consumed_energy`` (J); in ``tres_usage_in_*`` ``3=`` is joules, in
  ``tres_usage_out_tot`` it is average watts;
* state ints with the REQUEUE/RESIZING/REVOKED flags, exit codes as raw wait statuses (with
  slurmdbd's ``1 -> 256`` rewrite), array/het sentinels, association lineage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from schemas.job import EnergyStatus
from schemas.tres import (
    ENERGY_INVALID_AT_J,
    INFINITE64,
    NO_VAL64,
    STATIC_TRES_NAMES,
    TRES_ENERGY_ID,
    parse_raw,
)

NO_VAL: Final = 0xFFFFFFFE  # 4294967294: "not set" in 32-bit columns
INFINITE: Final = 0xFFFFFFFF  # 4294967295: e.g. timelimit UNLIMITED
NO_VAL16: Final = 0xFFFE

# Step ids (slurm.h), as the signed ``id_step`` column holds them.
STEP_PENDING: Final = -3
STEP_EXTERN: Final = -4
STEP_BATCH: Final = -5
STEP_INTERACTIVE: Final = -6

#: ``enum job_states`` base values; the string is ``job_state_string()``'s.
JOB_STATES: Final = (
    "PENDING",
    "RUNNING",
    "SUSPENDED",
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
)
JOB_STATE_BASE: Final = 0xFF
JOB_REQUEUE: Final = 0x400  # 1024
JOB_RESIZING: Final = 0x2000  # 8192
JOB_REVOKED: Final = 0x80000  # 524288
#: Flag states slurmdbd stores as the whole value, and their sacct names.
_FLAG_STATES: Final = (
    (JOB_REQUEUE, "REQUEUED"),
    (JOB_RESIZING, "RESIZING"),
    (JOB_REVOKED, "REVOKED"),
)
FINAL_STATES: Final = frozenset(JOB_STATES[3:])


class AccountingRowError(ValueError):
    """A slurmdbd row that cannot be read; the message names the column and its value."""


# --- energy ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Energy:
    """An energy as Slurm stored it: joules when usable, else why not."""

    joules: int | None
    status: EnergyStatus
    reported: str | None = None  # the stored value when it is not usable

    @property
    def usable(self) -> bool:
        return self.status is EnergyStatus.MEASURED and self.joules is not None


MISSING: Final = Energy(None, EnergyStatus.MISSING)


def energy_from_count(count: int | None) -> Energy:
    """One stored energy count in joules: NO_VAL64/INFINITE64 = not measured, >= 1e18 invalid."""
    if count is None:
        return MISSING
    if count in (NO_VAL64, INFINITE64):
        return Energy(None, EnergyStatus.MISSING, str(count))
    if count < 0 or count >= ENERGY_INVALID_AT_J:
        return Energy(None, EnergyStatus.INVALID, str(count))
    return Energy(count, EnergyStatus.MEASURED)


def job_energy(tres_alloc: str | None) -> Energy:
    """The job's energy as sacct's ConsumedEnergyRaw: the ``3=`` entry of the job table's raw
    ``tres_alloc`` (absent = 0 J, as sacct prints). NULL column = missing."""
    if tres_alloc is None:
        return MISSING
    if not tres_alloc.strip():
        return Energy(0, EnergyStatus.MEASURED)  # sacct: "not found -> 0"
    try:
        counts = parse_raw(tres_alloc)
    except ValueError as exc:
        raise AccountingRowError(f"job_table.tres_alloc {tres_alloc[:120]!r}: {exc}") from None
    return energy_from_count(counts.get(TRES_ENERGY_ID, 0))


def usage_energy_j(tres_usage_in: str | None) -> int | None:
    """Joules from a step's ``tres_usage_in_*`` (``3=`` is J there); None when absent."""
    if not tres_usage_in:
        return None
    value = parse_raw(tres_usage_in).get(TRES_ENERGY_ID)
    return energy_from_count(value).joules if value is not None else None


def usage_power_w(tres_usage_out_tot: str | None) -> int | None:
    """Average watts from a step's ``tres_usage_out_tot`` (``3=`` is W there, not J)."""
    if not tres_usage_out_tot:
        return None
    value = parse_raw(tres_usage_out_tot).get(TRES_ENERGY_ID)
    return None if value is None or value >= NO_VAL64 else value


@dataclass(frozen=True, slots=True)
class DbStep:
    """One ``<cluster>_step_table`` row (the columns reconciliation needs)."""

    id_step: int
    step_het_comp: int = NO_VAL
    state: int = 3
    exit_code: int = 0
    consumed_energy: int | None = None
    time_start: int = 0
    time_end: int = 0
    step_name: str = ""
    tres_usage_in_tot: str | None = None
    tres_usage_out_tot: str | None = None

    @property
    def energy(self) -> Energy:
        return energy_from_count(self.consumed_energy)

    @property
    def label(self) -> str:
        """sacct's step suffix: ``batch``, ``extern``, ``interactive`` or the number."""
        names = {STEP_BATCH: "batch", STEP_EXTERN: "extern", STEP_INTERACTIVE: "interactive"}
        return names.get(self.id_step, str(self.id_step))


def counted_steps(steps: Iterable[DbStep], contain: bool) -> list[DbStep]:
    """The steps whose energy Slurm adds to the job: under PrologFlags=Contain only the extern
    step (Bug 6239); otherwise every step but batch (its accounting bypasses the sum) and
    pending."""
    if contain:
        return [s for s in steps if s.id_step == STEP_EXTERN]
    return [s for s in steps if s.id_step not in (STEP_BATCH, STEP_EXTERN, STEP_PENDING)]


def expected_job_energy(steps: Sequence[DbStep], contain: bool | None = None) -> Energy:
    """The job energy Slurm derives from its steps. ``contain=None``: infer Contain from the
    presence of an extern step (it exists only under PrologFlags=Contain or X11)."""
    if contain is None:
        contain = any(s.id_step == STEP_EXTERN for s in steps)
    total: int | None = None
    for step in counted_steps(steps, contain):
        energy = step.energy
        if energy.status is EnergyStatus.INVALID:
            return energy
        if energy.joules is not None:
            total = (total or 0) + energy.joules
    return MISSING if total is None else Energy(total, EnergyStatus.MEASURED)


# --- state and exit codes ----------------------------------------------------------------------


def state_name(state: int) -> str:
    """sacct's name for a ``job_table.state`` value (flags first: 1024 -> REQUEUED)."""
    for flag, name in _FLAG_STATES:
        if state & flag:
            return name
    base = state & JOB_STATE_BASE
    if base >= len(JOB_STATES):
        raise AccountingRowError(f"job_table.state {state} is not a Slurm job state")
    return JOB_STATES[base]


def state_code(name: str) -> int:
    """The ``job_table.state`` value for a state name (``REQUEUED`` -> 1024)."""
    upper = name.strip().upper().split(" ")[0]  # sacct: "CANCELLED by 0"
    for flag, flag_name in _FLAG_STATES:
        if upper == flag_name:
            return flag
    aliases = {"COMPLETE": "COMPLETED", "OOM": "OUT_OF_MEMORY", "NODE_FAILURE": "NODE_FAIL"}
    upper = aliases.get(upper, upper)
    if upper not in JOB_STATES:
        raise ValueError(f"state {name!r} is not a Slurm job state")
    return JOB_STATES.index(upper)


def states_agree(jobcomp_state: str | None, db_state: int) -> bool:
    """Does a jobcomp state string describe this DB state? A requeued run's record says
    ``PENDING`` (base bits 0) while the DB stores JOB_REQUEUE (1024); a resize record says
    ``RESIZING``."""
    if jobcomp_state is None:
        return True
    name = state_name(db_state)
    if name == "REQUEUED":
        return jobcomp_state in ("PENDING", "REQUEUED")
    return jobcomp_state.upper() == name


def is_final(db_state: int) -> bool:
    """A state the row keeps (finished, requeued, resized, revoked)."""
    return state_name(db_state) in FINAL_STATES | {"REQUEUED", "RESIZING", "REVOKED"}


def decode_exit(status: int | None) -> str:
    """A raw wait status as Slurm prints it, ``"exit:signal"`` (NO_VAL -> ``"0:0"``)."""
    if status is None:
        return "0:0"
    status &= 0xFFFFFFFF  # step_table.exit_code is signed
    if status == NO_VAL:
        return "0:0"
    low = status & 0x7F
    if low != 0 and low != 0x7F:  # WIFSIGNALED
        return f"0:{low}"
    if low == 0:  # WIFEXITED
        return f"{(status >> 8) & 0xFF}:0"
    return "0:0"  # stopped: Slurm prints neither


def exit_codes_agree(jobcomp: str | None, db_status: int) -> bool:
    """jobcomp ``E:S`` vs the DB's raw status, allowing slurmdbd's rewrite of a raw 1 ("set by
    Slurm, not signalled") to 256: the record prints ``0:1``, the DB/sacct ``1:0``."""
    if jobcomp is None:
        return True
    text = jobcomp.replace(" ", "")
    return text == decode_exit(db_status) or (text == "0:1" and db_status == 256)


def derived_exit_agrees(jobcomp: str | None, db_status: int) -> bool:
    """``derived_ec``: the DB keeps the GREATEST over later step completions, so a higher DB
    value is expected; only a DB value *below* the record's is a disagreement."""
    if jobcomp is None:
        return True
    return exit_codes_agree(jobcomp, db_status) or _ec_rank(decode_exit(db_status)) >= _ec_rank(
        jobcomp
    )


def _ec_rank(text: str) -> tuple[int, int]:
    code, _, sig = text.partition(":")
    try:
        return (int(code), int(sig or 0))
    except ValueError:
        return (-1, -1)


# --- ids, sentinels, partitions, lineage --------------------------------------------------------


def db_array(id_array_job: int | None, id_array_task: int | None) -> tuple[int | None, int | None]:
    """``(array_job_id, array_task_id)`` as the normalized record has them: 0 / NO_VAL -> None
    (a meta record with unsplit tasks keeps its master id and no task id)."""
    if not id_array_job:
        return None, None
    task = None if id_array_task in (None, NO_VAL, INFINITE) else id_array_task
    return id_array_job, task


def db_het(het_job_id: int | None, het_job_offset: int | None) -> tuple[int | None, int | None]:
    """``(het_job_id, het_job_offset)`` normalized: the DB stores ``0/4294967294`` for a normal
    job where Kafka sends ``0/0``; both become ``None/None``."""
    if not het_job_id:
        return None, None
    return het_job_id, None if het_job_offset in (None, NO_VAL) else het_job_offset


def partition_agrees(ran_in: str | None, requested: Sequence[str] | None, db: str) -> bool:
    """The record's partition (25.05+: the one it ran in) or requested list (<= 24.11, a comma
    list) against the DB's."""
    if ran_in:
        return ran_in == db or db in ran_in.split(",")
    if requested:
        return db in requested or db in ",".join(requested).split(",")
    return True


def lineage_accounts(lineage: str | None) -> tuple[str, ...]:
    """Account path from a 23.11+ ``lineage`` (``/ucmerced/oit/0-rromero/`` ->
    ``("ucmerced", "oit")``): user components (``0-<user>``) and ``root`` left out."""
    if not lineage:
        return ()
    parts = [p for p in lineage.strip("/").split("/") if p]
    return tuple(p for p in parts if not p.startswith("0-") and p != "root")


@dataclass(frozen=True, slots=True)
class AssocNode:
    """An account-level association row (``user = ''``) of the nested-set tree (< 23.11)."""

    acct: str
    lft: int
    rgt: int


def nested_set_accounts(lft: int, rgt: int, accounts: Iterable[AssocNode]) -> tuple[str, ...]:
    """Account path of an association before 23.11 (``lft``/``rgt`` nested sets): the
    account-level rows enclosing it, outermost first, ``root`` left out."""
    around = sorted((a for a in accounts if a.lft <= lft and a.rgt >= rgt), key=lambda a: a.lft)
    path: list[str] = []
    for node in around:
        if node.acct != "root" and (not path or path[-1] != node.acct):
            path.append(node.acct)
    return tuple(path)


def parent_accounts_path(parent_accounts: str | None) -> tuple[str, ...]:
    """jobcomp ``parent_accounts`` (``/root/ucmerced/oit/oit``) as an account path: ``root``
    dropped, the leaf account that repeats for a user association collapsed."""
    if not parent_accounts:
        return ()
    path: list[str] = []
    for part in parent_accounts.strip("/").split("/"):
        if part and part != "root" and (not path or path[-1] != part):
            path.append(part)
    return tuple(path)


# --- SLUIDs -------------------------------------------------------------------------------------

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_VALUE: Final = {c: i for i, c in enumerate(_CROCKFORD)} | {
    "O": 0,
    "I": 1,
    "L": 1,
}


def sluid_to_db_inx(sluid: str) -> int:
    """``job_db_inx`` from a printed SLUID (``s`` + 13 Crockford base32 digits)."""
    text = sluid.strip().upper()
    if not text.startswith("S") or len(text) != 14:
        raise ValueError(f"sluid {sluid!r} is not 's' + 13 Crockford base32 digits")
    value = 0
    for char in text[1:]:
        digit = _CROCKFORD_VALUE.get(char)
        if digit is None:
            raise ValueError(f"sluid {sluid!r} has {char!r}, not a Crockford base32 digit")
        value = value * 32 + digit
    if value >= 2**64:
        raise ValueError(f"sluid {sluid!r} is larger than 64 bits")
    return value


def print_sluid(job_db_inx: int) -> str:
    """Slurm's printed SLUID of a 24.11+ ``job_db_inx``."""
    return "s" + "".join(_CROCKFORD[(job_db_inx >> (5 * i)) & 31] for i in range(12, -1, -1))


# --- the DB row -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DbJob:
    """One ``<cluster>_job_table`` row with its names resolved (association, QoS, TRES):
    the accounting sources build these; the rules and the classifier only read them."""

    cluster: str
    job_db_inx: int
    id_job: int
    time_submit: int
    state: int
    tres_alloc: str | None
    account: str | None = None
    partition: str = ""
    time_eligible: int = 0
    time_start: int = 0
    time_end: int = 0
    exit_code: int = 0
    derived_ec: int = 0
    id_user: int | None = None
    id_group: int | None = None
    id_array_job: int = 0
    id_array_task: int = NO_VAL
    het_job_id: int = 0
    het_job_offset: int = NO_VAL
    job_name: str = ""
    nodelist: str | None = None
    nodes_alloc: int | None = None
    timelimit: int | None = None  # minutes
    tres_req: str | None = None
    qos: str | None = None
    user: str | None = None  # from the association
    account_path: tuple[str, ...] | None = None  # lineage without root; None if no assoc
    id_assoc: int | None = None
    sluid: int | None = None  # 26.05+: original SLUID, stable across resize
    tres_names: dict[int, str] = field(default_factory=lambda: dict(STATIC_TRES_NAMES))
    steps: tuple[DbStep, ...] = ()

    @property
    def energy(self) -> Energy:
        """Final job energy: the ``3=`` of ``tres_alloc`` (sacct's ConsumedEnergyRaw)."""
        return job_energy(self.tres_alloc)

    @property
    def settled(self) -> bool:
        """The row is final: the job ended and every stored step has ended too."""
        return (
            self.time_end > 0
            and is_final(self.state)
            and all(s.time_end > 0 for s in self.steps if s.id_step != STEP_PENDING)
        )


def alloc_tres_text(tres_alloc: str | None, names: dict[int, str]) -> str:
    """sacct's AllocTRES: the raw ``tres_alloc`` by name, sorted, mem with its unit, sentinels
    and zeros left out (``billing=1,cpu=1,energy=408,node=1``)."""
    if not tres_alloc:
        return ""
    items: list[tuple[str, str]] = []
    for tres_id, count in parse_raw(tres_alloc).items():
        if count == 0 or count >= NO_VAL64:
            continue
        name = names.get(tres_id, f"{tres_id}")
        items.append((name, _mem_text(count) if name == "mem" else str(count)))
    return ",".join(f"{n}={v}" for n, v in sorted(items))


def _mem_text(mb: int) -> str:
    units = "MGTPE"
    value = float(mb)
    unit = 0
    while value >= 1024 and value % 1024 == 0 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    if value.is_integer():
        return f"{int(value)}{units[unit]}"
    return f"{value:.2f}{units[unit]}"
