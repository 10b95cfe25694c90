"""The submission-time check: a job request, the user's usage and history, the policy and
an intensity forecast in; everything the user sees out (pure, no clock: ``now`` is given)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from jobcarbon.credit.decision import Decision, decide
from jobcarbon.credit.greener import ForecastPoint, GreenerStart, greener_start, mean_intensity
from jobcarbon.credit.policy import Policy, budget_kg, equivalents
from jobcarbon.credit.predict import JobRequest, PastJob, Prediction, predict
from schemas.fact import J_PER_KWH


@dataclass(frozen=True, slots=True)
class Usage:
    """What the warehouse knows about a user and the allocation scope (grams CO2e)."""

    past_co2e_g: float  # the user's settled jobs in the past window
    past_energy_facility_j: float  # same jobs' facility energy (for the average rate)
    running_co2e_g: float  # the user's open reservations (pending and running jobs)
    period_used_g: float  # scope's settled CO2e this period + open reservations + adjustments
    previous_period_used_g: float | None  # scope's CO2e last period (carry-over), if any


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Everything ``POST /v1/check`` returns (grams and joules; the API adds kg views)."""

    request: JobRequest
    prediction: Prediction
    pue: float
    intensity_g_per_kwh: float
    intensity_source: str
    predicted_co2e_g: float
    predicted_co2e_low_g: float
    predicted_co2e_high_g: float
    past_co2e_g: float
    running_co2e_g: float
    total_co2e_g: float
    average_rate_g_per_kwh: float | None
    budget_kg: float | None
    used_kg: float | None
    available_kg: float | None
    decision: Decision
    message: str
    equivalents: dict[str, float]
    greener: GreenerStart | None


def co2e_g(energy_it_j: float, pue: float, intensity_g_per_kwh: float) -> float:
    """IT energy -> facility energy (x PUE) -> grams CO2e at an intensity."""
    return energy_it_j * pue / J_PER_KWH * intensity_g_per_kwh


def run_check(
    request: JobRequest,
    usage: Usage,
    history: Iterable[PastJob] | Prediction,
    policy: Policy,
    *,
    now: datetime,
    pue: float,
    fallback_intensity_g_per_kwh: float,
    fallback_source: str,
    forecast: Sequence[ForecastPoint] = (),
    forecast_source: str = "forecast",
    max_delay_s: float | None = None,
) -> CheckResult:
    """Predict the job (from ``history``, or take the given prediction), price it at the
    intensity over its run (forecast, else the fallback), apply the account's policy and look
    for a greener start within the allowed delay."""
    prediction = history if isinstance(history, Prediction) else predict(request, history)
    mean, covered = mean_intensity(forecast, now, prediction.runtime_s) if forecast else (0, 0)
    if covered >= 1.0 - 1e-9:
        intensity, source = float(mean), forecast_source
    else:
        intensity, source = fallback_intensity_g_per_kwh, fallback_source
    predicted = co2e_g(prediction.energy_it_j, pue, intensity)
    allocation = policy.allocation(request.account, request.user)
    budget = budget_kg(allocation, _kg(usage.previous_period_used_g)) if allocation else None
    verdict = decide(allocation, budget or 0.0, usage.period_used_g / 1000, predicted / 1000)
    delay_s = policy.max_delay_hours * 3600 if max_delay_s is None else max_delay_s
    greener = (
        greener_start(
            forecast,
            now=now,
            runtime_s=prediction.runtime_s,
            energy_facility_j=prediction.energy_it_j * pue,
            max_delay_s=min(delay_s, policy.max_delay_hours * 3600),
        )
        if forecast
        else None
    )
    return CheckResult(
        request=request,
        prediction=prediction,
        pue=pue,
        intensity_g_per_kwh=intensity,
        intensity_source=source,
        predicted_co2e_g=predicted,
        predicted_co2e_low_g=co2e_g(prediction.energy_low_j, pue, intensity),
        predicted_co2e_high_g=co2e_g(prediction.energy_high_j, pue, intensity),
        past_co2e_g=usage.past_co2e_g,
        running_co2e_g=usage.running_co2e_g,
        total_co2e_g=usage.past_co2e_g + usage.running_co2e_g + predicted,
        average_rate_g_per_kwh=(
            usage.past_co2e_g / (usage.past_energy_facility_j / J_PER_KWH)
            if usage.past_energy_facility_j > 0
            else None
        ),
        budget_kg=budget,
        used_kg=usage.period_used_g / 1000 if allocation else None,
        available_kg=verdict.available_kg,
        decision=verdict.decision,
        message=verdict.message,
        equivalents=equivalents(predicted, policy.equivalences),
        greener=greener,
    )


def _kg(grams: float | None) -> float | None:
    return None if grams is None else grams / 1000
