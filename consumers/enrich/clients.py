"""Provider API clients (thin shells): build the documented request, fetch with retries
(``consumers.enrich.http``), hand the body to the pure parser. Long ranges are cut into the
chunks each API accepts.

Auth as documented: Electricity Maps ``auth-token`` header; WattTime HTTP Basic on
``/login`` for a bearer token (re-login once on 401); UK Carbon Intensity and ODRÉ need none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Final

import httpx
import orjson

from consumers.enrich.http import Fetcher, ProviderAuthError, ProviderError
from consumers.enrich.model import IntensityPoint, Parsed, Rejected, SeriesError, finish
from consumers.enrich.parsers import electricitymaps, rte, ukci, watttime
from jobcarbon.settings import ProviderSettings

BASE_URLS: Final = {
    "electricitymaps": "https://api.electricitymaps.com/v3",
    "uk-carbon-intensity": "https://api.carbonintensity.org.uk",
    "rte": "https://odre.opendatasoft.com/api/explore/v2.1",
    "watttime": "https://api.watttime.org",
}
PROVIDERS: Final = tuple(BASE_URLS)
#: Electricity Maps past-range: "limited to 10 days (240 hours) for an hourly granularity".
EM_CHUNK: Final = timedelta(days=10)
#: Electricity Maps /history: the last 24 hours.
HISTORY_SPAN: Final = timedelta(hours=24)
#: UK CI: the maximum range is not documented in what we could read; 14 days is safe.
UK_CHUNK: Final = timedelta(days=14)
RTE_CHUNK: Final = timedelta(days=1)  # 96 quarter-hours, within one 100-record page
RTE_PAGE: Final = 100
WT_CHUNK: Final = timedelta(days=30)


def fetcher_for(provider: str, config: ProviderSettings, **kwargs: object) -> Fetcher:
    """A Fetcher with the provider's timeout and retry settings."""
    return Fetcher(
        provider,
        timeout_s=config.timeout_s,
        max_attempts=config.max_attempts,
        backoff_s=config.backoff_s,
        **kwargs,  # type: ignore[arg-type]
    )


def chunks(start: datetime, end: datetime, size: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """``[start, end)`` cut into windows of at most ``size``."""
    t = start
    while t < end:
        nxt = min(t + size, end)
        yield t, nxt
        t = nxt


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge(parts: list[Parsed]) -> Parsed:
    points: list[IntensityPoint] = [p for part in parts for p in part.points]
    rejected: list[Rejected] = [r for part in parts for r in part.rejected]
    return finish(points, rejected)


class ElectricityMapsClient:
    """``/carbon-intensity/{latest,history,past-range,forecast}``."""

    def __init__(self, config: ProviderSettings, fetcher: Fetcher, now: Callable[[], datetime]):
        if config.token is None:
            raise ProviderAuthError("electricitymaps", "no token configured (providers.token)")
        self.base = (config.base_url or BASE_URLS["electricitymaps"]).rstrip("/")
        self.headers = {"auth-token": config.token.get_secret_value()}
        self.fetcher = fetcher
        self.now = now

    def _get(self, path: str, **params: str) -> Parsed:
        body = self.fetcher.get(f"{self.base}/carbon-intensity/{path}", params, self.headers)
        return electricitymaps.parse(body, self.now())

    def latest(self, zone: str) -> Parsed:
        """The current hour."""
        return self._get("latest", zone=zone)

    def history(self, zone: str) -> Parsed:
        """The last 24 hours."""
        return self._get("history", zone=zone)

    def forecast(self, zone: str) -> Parsed:
        """The provider's forecast (estimated points)."""
        return self._get("forecast", zone=zone)

    def series(self, zone: str, start: datetime, end: datetime) -> Parsed:
        """``[start, end)``: from ``/history`` (free tier) when the window lies in the last
        24 hours, else from ``/past-range`` (commercial)."""
        if start >= self.now() - HISTORY_SPAN:
            history = self.history(zone)
            return Parsed(
                tuple(p for p in history.points if p.end_at > start and p.start_at < end),
                history.rejected,
            )
        return self.past_range(zone, start, end)

    def past_range(self, zone: str, start: datetime, end: datetime) -> Parsed:
        """``[start, end)`` in chunks of 10 days (commercial endpoint)."""
        return _merge(
            [
                self._get("past-range", zone=zone, start=_iso(a), end=_iso(b))
                for a, b in chunks(start, end, EM_CHUNK)
            ]
        )


class UkCarbonIntensityClient:
    """National ``/intensity/{from}/{to}`` (zone ``GB``) and regional
    ``/regional/intensity/{from}/{to}/regionid/{id}`` (zones ``GB-R<id>``)."""

    def __init__(self, config: ProviderSettings, fetcher: Fetcher, now: Callable[[], datetime]):
        self.base = (config.base_url or BASE_URLS["uk-carbon-intensity"]).rstrip("/")
        self.fetcher = fetcher
        self.now = now

    def series(self, zone: str, start: datetime, end: datetime) -> Parsed:
        """Half-hourly values over ``[start, end)``."""
        if zone == ukci.NATIONAL_ZONE:
            path = "intensity/{a}/{b}"
        elif zone.startswith("GB-R") and zone[4:].isdigit():
            path = "regional/intensity/{a}/{b}/regionid/" + zone[4:]
        else:
            raise ProviderError("uk-carbon-intensity", f"unknown zone {zone!r} (GB or GB-R<id>)")
        parts = []
        for a, b in chunks(start, end, UK_CHUNK):
            url = f"{self.base}/" + path.format(
                a=a.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ"),
                b=b.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ"),
            )
            parts.append(ukci.parse(self.fetcher.get(url), self.now()))
        return _merge(parts)


class RteClient:
    """ODRÉ v2.1 ``/catalog/datasets/<dataset>/records`` (zone ``FR``), paged."""

    def __init__(
        self,
        config: ProviderSettings,
        fetcher: Fetcher,
        now: Callable[[], datetime],
        dataset: str = "eco2mix-national-tr",
    ):
        self.base = (config.base_url or BASE_URLS["rte"]).rstrip("/")
        self.url = f"{self.base}/catalog/datasets/{dataset}/records"
        self.fetcher = fetcher
        self.now = now

    def series(self, zone: str, start: datetime, end: datetime) -> Parsed:
        """Quarter-hourly ``taux_co2`` over ``[start, end)``."""
        if zone != rte.ZONE:
            raise ProviderError("rte", f"éCO2mix national covers zone FR only, not {zone!r}")
        parts = []
        for a, b in chunks(start, end, RTE_CHUNK):
            offset = 0
            while True:
                params: dict[str, str | int] = {
                    "select": "date_heure,taux_co2",
                    "where": f"date_heure >= date'{_iso(a)}' AND date_heure < date'{_iso(b)}'",
                    "order_by": "date_heure",
                    "limit": RTE_PAGE,
                    "offset": offset,
                }
                body = self.fetcher.get(self.url, params)
                parts.append(rte.parse_json(body, self.now()))
                total = _total_count(body)
                offset += RTE_PAGE
                if offset >= total:
                    break
        return _merge(parts)


def _total_count(body: bytes) -> int:
    try:
        total = orjson.loads(body).get("total_count", 0)
    except (orjson.JSONDecodeError, AttributeError):
        raise SeriesError("rte: reply has no total_count") from None
    if not isinstance(total, int) or total < 0:
        raise SeriesError(f"rte: total_count is not a count: {total!r}")
    return total


class WattTimeClient:
    """``/login`` then ``/v3/historical`` and ``/v3/forecast`` (signal ``co2_moer``)."""

    def __init__(self, config: ProviderSettings, fetcher: Fetcher, now: Callable[[], datetime]):
        if not config.username or config.password is None:
            raise ProviderAuthError("watttime", "no username/password configured")
        self.base = (config.base_url or BASE_URLS["watttime"]).rstrip("/")
        self.auth = (config.username, config.password.get_secret_value())
        self.fetcher = fetcher
        self.now = now
        self._token: str | None = None

    def _login(self) -> str:
        body = self.fetcher.get(f"{self.base}/login", auth=httpx.BasicAuth(*self.auth))
        try:
            token = orjson.loads(body)["token"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise SeriesError("watttime: /login reply has no 'token'") from None
        if not isinstance(token, str) or not token:
            raise SeriesError("watttime: /login 'token' is empty")
        return token

    def _get(self, path: str, params: dict[str, str | int]) -> bytes:
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._login()
            try:
                return self.fetcher.get(
                    f"{self.base}{path}", params, {"Authorization": f"Bearer {self._token}"}
                )
            except ProviderAuthError:
                self._token = None  # tokens expire (30 min): log in again, once
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def historical(
        self, region: str, start: datetime, end: datetime, signal_type: str = "co2_moer"
    ) -> Parsed:
        """Values over ``[start, end)`` in 30-day chunks."""
        return _merge(
            [
                watttime.parse_json(
                    self._get(
                        "/v3/historical",
                        {
                            "region": region,
                            "start": _iso(a),
                            "end": _iso(b),
                            "signal_type": signal_type,
                        },
                    ),
                    self.now(),
                )
                for a, b in chunks(start, end, WT_CHUNK)
            ]
        )

    def forecast(self, region: str, signal_type: str = "co2_moer") -> Parsed:
        """The current forecast (estimated points)."""
        body = self._get("/v3/forecast", {"region": region, "signal_type": signal_type})
        return watttime.parse_json(body, self.now(), forecast=True)


def fetch_series(
    provider: str,
    zone: str,
    start: datetime,
    end: datetime,
    config: ProviderSettings,
    now: Callable[[], datetime],
    fetcher: Fetcher | None = None,
) -> Parsed:
    """Points of one provider for a zone over ``[start, end)`` (the CLI's ``fetch``)."""
    if end <= start:
        raise ValueError(f"--to {end.isoformat()} must be after --from {start.isoformat()}")
    fetch = fetcher or fetcher_for(provider, config)
    if provider == "electricitymaps":
        return ElectricityMapsClient(config, fetch, now).series(zone, start, end)
    if provider == "uk-carbon-intensity":
        return UkCarbonIntensityClient(config, fetch, now).series(zone, start, end)
    if provider == "rte":
        return RteClient(config, fetch, now).series(zone, start, end)
    if provider == "watttime":
        return WattTimeClient(config, fetch, now).historical(zone, start, end)
    raise ValueError(f"unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
