"""The stream seam: a state snapshot of topic messages -> lookup -> enrich."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from consumers.enrich.adapter import make_stage, pue_point
from consumers.enrich.codec import encode_point
from consumers.enrich.model import IntensityPoint, SeriesError
from jobcarbon.settings import Settings
from schemas.fact import fact_from_record
from schemas.job import EnergyStatus, JobRecord

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class State:
    intensity: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    power: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def test_stage_from_messages() -> None:
    # 1 kWh over 00:00-02:00 at 100 then 300 g/kWh; PUE from power 1200 W / 1000 W = 1.2.
    # factor = 1.2 * (100 + 300) / 2 = 240 -> 240 g.
    msgs = [
        orjson.loads(
            encode_point(
                IntensityPoint(
                    provider="electricitymaps",
                    zone="SE",
                    signal="average",
                    basis="lifecycle",
                    start_at=T0 + timedelta(hours=h),
                    end_at=T0 + timedelta(hours=h + 1),
                    value_g_per_kwh=v,
                )
            )
        )
        for h, v in ((0, 100), (1, 300))
    ]
    msgs.append({"zone": "SE", "start_at": "garbage"})  # skipped, not fatal
    power = [
        {
            "site": "dc",
            "start_at": "2024-01-01T00:00:00Z",
            "end_at": "2024-01-01T02:00:00Z",
            "total_power_w": 1200,
            "it_power_w": 1000,
        }
    ]
    state = State(intensity={"SE": msgs}, power={"dc": power})
    settings = Settings(carbon={"clusters": {"c": {"zone": "SE", "site": "dc"}}})  # type: ignore[arg-type]
    stage = make_stage(settings, lambda: T0)
    record = JobRecord(
        cluster="c",
        job_id=1,
        submit_time=T0,
        start_time=T0,
        end_time=T0 + timedelta(hours=2),
        energy_j=3_600_000,
        energy_status=EnergyStatus.MEASURED,
    )
    out = stage(fact_from_record(record), state)
    acct = out.accounting_estimate
    assert acct is not None and acct.co2e_g == pytest.approx(240)
    assert out.footprint is not None and out.footprint.pue_coverage == 1.0


def test_bad_power_point() -> None:
    with pytest.raises(SeriesError, match="it_power_w"):
        pue_point(
            {
                "site": "dc",
                "start_at": "2024-01-01T00:00:00Z",
                "end_at": "2024-01-01T01:00:00Z",
                "total_power_w": 1,
                "it_power_w": 0,
            }
        )
