"""Build the credit API from ``Settings``: warehouse engine, store, policy file, munged,
forecast file. ``jobcarbon credit serve`` runs the result with uvicorn."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from jobcarbon.api.app import ApiConfig, CreditApi, PolicyHolder, create_app
from jobcarbon.api.auth import MungeVerifier, uid_resolver
from jobcarbon.credit.greener import ForecastPoint
from jobcarbon.credit.memory import Generation, MemoryCreditStore
from jobcarbon.credit.sql import SqlCreditStore
from jobcarbon.credit.store import CreditStore
from jobcarbon.settings import Settings
from warehouse.engine import make_engine

#: Path of the ledger generation file the workers of one server share.
GENERATION_ENV = "JOBCARBON_CREDIT_GENERATION_FILE"


def parse_forecast(text: str) -> list[ForecastPoint]:
    """``[{"start_at": ISO, "end_at": ISO, "intensity_g_per_kwh": N}, ...]`` -> points."""
    points = []
    for i, item in enumerate(json.loads(text)):
        try:
            start = datetime.fromisoformat(item["start_at"])
            end = datetime.fromisoformat(item["end_at"])
            value = float(item["intensity_g_per_kwh"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"forecast[{i}]: {item!r} is not a forecast point ({exc})") from None
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError(f"forecast[{i}].start_at/end_at: must carry a UTC offset")
        points.append(ForecastPoint(start, end, value))
    return points


class ForecastFile:
    """A forecast JSON file, re-read when it changes (the carbon poller rewrites it)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._mtime = -1.0
        self._points: list[ForecastPoint] = []

    def __call__(self, now: datetime) -> Sequence[ForecastPoint]:
        if not self.path or not os.path.exists(self.path):
            return ()
        mtime = os.path.getmtime(self.path)
        if mtime != self._mtime:
            with open(self.path) as fh:
                self._points = parse_forecast(fh.read())
            self._mtime = mtime
        return [p for p in self._points if p.end_at > now]


class WarehouseForecast:
    """The forecast from the warehouse's intensity series (the carbon poller's provider
    forecasts, then 1-day and 7-day persistence: ``consumers.enrich.forecast``), for the
    cluster's zone and first average-signal series; re-read every ``refresh_s``."""

    def __init__(
        self, engine: Engine, settings: Settings, horizon: timedelta, refresh_s: float = 300.0
    ) -> None:
        self.engine, self.horizon, self.refresh_s = engine, horizon, refresh_s
        carbon = settings.carbon
        self.zone = carbon.cluster(settings.credit.cluster).zone
        series = [s for s in carbon.series(self.zone) if s.signal == "average"]
        self.provider = series[0].provider if series else None
        self._at = -1e18
        self._points: list[ForecastPoint] = []

    @property
    def source(self) -> str:
        return f"forecast {self.provider}:{self.zone} (provider, then persistence)"

    def __call__(self, now: datetime) -> Sequence[ForecastPoint]:
        if self.provider is None:
            return ()
        if time.monotonic() - self._at > self.refresh_s:
            from consumers.enrich.forecast import forecast_from_lookup
            from consumers.enrich.lookup import InMemoryLookup
            from warehouse.series_store import read_intensity

            start, end = now, now + self.horizon
            lookup = InMemoryLookup()
            with self.engine.connect() as conn:
                lookup.add(
                    read_intensity(
                        conn, self.provider, self.zone, "average", start - timedelta(days=7), end
                    )
                )
            result = forecast_from_lookup(lookup, self.provider, self.zone, "average", start, end)
            self._points = [
                ForecastPoint(p.start_at, p.end_at, p.value_g_per_kwh) for p in result.points
            ]
            self._at = time.monotonic()
        return [p for p in self._points if p.end_at > now]


def build_app(settings: Settings) -> CreditApi:
    """The credit API configured from ``settings``."""
    return create_app(build_app_config(settings))


def build_app_config(settings: Settings, *, serving: bool = True) -> ApiConfig:
    """The API's configuration (store, policy, munged, forecast) from ``settings``
    (``serving`` False: one-shot use, no in-process state to load)."""
    credit = settings.credit
    engine = make_engine(settings.warehouse.url, pool_pre_ping=True)
    carbon = settings.carbon
    policy = PolicyHolder.from_file(credit.policy_file)
    sql = SqlCreditStore(engine, cluster=credit.cluster)
    store: CreditStore = sql
    if credit.in_process_state and serving:
        store = MemoryCreditStore(
            sql,
            clock=lambda: datetime.now(UTC),
            past_window_days=lambda: policy.policy.past_window_days,
            # all worker processes of one ``credit serve`` share it (jobcarbon.cli.credit)
            generation=Generation(os.environ.get(GENERATION_ENV)),
            refresh_s=credit.state_refresh_s,
            history_refresh_s=credit.history_refresh_s,
            ledger_poll_s=credit.ledger_poll_s,
        )
    return ApiConfig(
        store=store,
        policy=policy,
        verifier=MungeVerifier(credit.munge_socket),
        resolve_uid=uid_resolver(credit.user_uids),
        admin_token=credit.admin_token.get_secret_value() if credit.admin_token else None,
        # settings are fixed for the process: building ClusterSettings/SiteSettings defaults per
        # check cost ~20 us (bench.credit); bounded, as the name comes from the request
        pue_for=functools.lru_cache(maxsize=1024)(
            lambda cluster: carbon.site(carbon.cluster(cluster).site).pue
        ),
        forecast=ForecastFile(credit.forecast_file),
        forecast_source=f"forecast file {credit.forecast_file}",
        fallback_intensity_g_per_kwh=carbon.default_intensity_g_per_kwh,
        fallback_source=carbon.default_intensity_source,
        default_cluster=credit.cluster,
        stale_after=timedelta(hours=credit.stale_reservation_hours),
        max_request_bytes=credit.max_request_bytes,
    )


def app_from_environment() -> CreditApi:
    """uvicorn factory for worker processes: settings from ``JOBCARBON_CONFIG`` / env."""
    from jobcarbon.settings import load_settings

    return build_app(load_settings())
