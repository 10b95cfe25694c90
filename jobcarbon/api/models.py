"""Request and response bodies of the credit API (bounded: names are Slurm-like identifiers,
numbers have ranges, free text has no control characters)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

#: User, account, partition and cluster names: what Slurm and POSIX accept, nothing more.
#: (Patterns are pydantic's Rust regexes, where ``$`` is the end of the text.)
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]*$"
NAME_MAX = 64
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)]
#: Job names are free text, but printable and bounded.
JOB_NAME_PATTERN = r"^[^\x00-\x1f\x7f]*$"
JOB_NAME_MAX = 256
JobName = Annotated[str, Field(max_length=JOB_NAME_MAX, pattern=JOB_NAME_PATTERN)]
MAX_TIME_LIMIT_S = 366 * 86_400
#: Bounds of the request's numbers: (ge, le).
NODES = (1, 100_000)
CPUS = (1, 10_000_000)
GPUS = (0, 1_000_000)
TIME_LIMIT_S = (1, MAX_TIME_LIMIT_S)
MAX_DELAY_S = (0, 7 * 86_400)


class CheckRequest(BaseModel):
    """What sbatch is about to submit."""

    model_config = ConfigDict(extra="forbid")

    user: Name
    account: Name
    partition: Name
    cluster: Name | None = None
    nodes: int = Field(1, ge=NODES[0], le=NODES[1])
    cpus: int = Field(1, ge=CPUS[0], le=CPUS[1])
    gpus: int = Field(0, ge=GPUS[0], le=GPUS[1])
    time_limit_s: int = Field(..., ge=TIME_LIMIT_S[0], le=TIME_LIMIT_S[1])
    job_name: JobName = ""
    #: How long the user lets the greener-start search delay the job (policy caps it).
    max_delay_s: int | None = Field(None, ge=MAX_DELAY_S[0], le=MAX_DELAY_S[1])


class ReservationRequest(CheckRequest):
    """A submitted job: the server predicts its CO2e again and reserves it."""

    job_id: int = Field(..., ge=1, le=2**63 - 1)


class Prediction(BaseModel):
    energy_it_j: float
    energy_low_j: float
    energy_high_j: float
    runtime_s: float
    level: str
    samples: int


class Equivalent(BaseModel):
    value: float
    unit: str
    label: str
    source: str


class Greener(BaseModel):
    begin_at: datetime
    sbatch_begin: str | None
    co2e_g: float
    co2e_saved_g: float
    intensity_g_per_kwh: float


class CheckResponse(BaseModel):
    """Everything the user sees at submission (grams unless the name says kg)."""

    user: str
    account: str
    checked_at: datetime
    past_window_days: float
    past_co2e_g: float
    running_co2e_g: float
    predicted_co2e_g: float
    predicted_co2e_low_g: float
    predicted_co2e_high_g: float
    total_co2e_g: float
    average_rate_g_per_kwh: float | None
    budget_kg: float | None
    used_kg: float | None
    available_credit_kg: float | None
    intensity_g_per_kwh: float
    intensity_source: str
    pue: float
    prediction: Prediction
    equivalents: dict[str, Equivalent]
    decision: Literal["allow", "warn", "deny"]
    message: str
    suggested_begin: str | None
    greener: Greener | None


class ReservationResponse(BaseModel):
    id: int
    created: bool
    co2e_g: float


class LedgerEntryOut(BaseModel):
    id: int
    entry_type: str
    account: str
    user: str | None
    cluster: str | None
    job_id: int | None
    reservation_id: int | None
    amount_g: float
    created_at: datetime
    actor: str
    note: str | None


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    toml: str = Field(..., max_length=1_000_000)


class PolicyOut(BaseModel):
    toml: str
    accounts: list[str]
    past_window_days: float
    max_delay_hours: float


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: Name
    user: Name | None = None
    amount_g: float = Field(..., ge=-1e12, le=1e12, allow_inf_nan=False)
    note: JobName = Field(..., min_length=1)


class IdOut(BaseModel):
    id: int


class SweepOut(BaseModel):
    settled: int
    released: int


class ErrorOut(BaseModel):
    detail: str
