"""Provider clients against a real local HTTP server serving the fixtures and scripted
errors (timeouts, 401, 429, 5xx, malformed bodies)."""

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.enrich.clients import (
    ElectricityMapsClient,
    RteClient,
    UkCarbonIntensityClient,
    WattTimeClient,
    fetch_series,
)
from consumers.enrich.http import Fetcher, ProviderAuthError, ProviderError
from consumers.enrich.model import SeriesError
from jobcarbon.settings import ProviderSettings
from tests.services.http_script import Reply, ScriptedServer

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN = "s3cret-token"


def now() -> datetime:
    return NOW


def fetcher(provider: str, sleeps: list[float], **kw: float) -> Fetcher:
    return Fetcher(provider, backoff_s=0.5, sleep=sleeps.append, **kw)  # type: ignore[arg-type]


def em(server: ScriptedServer, sleeps: list[float], **kw: float) -> ElectricityMapsClient:
    config = ProviderSettings(base_url=server.url + "/v3", token=TOKEN)  # type: ignore[arg-type]
    return ElectricityMapsClient(config, fetcher("electricitymaps", sleeps, **kw), now)


def test_past_range_sends_token_and_chunks_by_ten_days(
    http_server: ScriptedServer, shared_data: Path
) -> None:
    body = (shared_data / "electricitymaps/if-electricitymaps_past_range_DK-DK2.json").read_bytes()
    http_server.route("/v3/carbon-intensity/past-range", Reply(200, body))
    sleeps: list[float] = []
    parsed = em(http_server, sleeps).past_range(
        "DK-DK2", datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 26, tzinfo=UTC)
    )
    assert [p.value_g_per_kwh for p in parsed.strict()] == [161, 167]
    assert parsed.points[0].fetched_at == NOW
    hits = http_server.hits("/v3/carbon-intensity/past-range")
    assert [(h.query["start"], h.query["end"]) for h in hits] == [
        (["2024-03-01T00:00:00Z"], ["2024-03-11T00:00:00Z"]),
        (["2024-03-11T00:00:00Z"], ["2024-03-21T00:00:00Z"]),
        (["2024-03-21T00:00:00Z"], ["2024-03-26T00:00:00Z"]),
    ]
    assert all(h.headers["auth-token"] == TOKEN and h.query["zone"] == ["DK-DK2"] for h in hits)
    assert sleeps == []


def test_retries_5xx_with_exponential_backoff(
    http_server: ScriptedServer, shared_data: Path
) -> None:
    body = (
        shared_data / "electricitymaps/aioelectricitymaps_carbon_intensity_history_DE.json"
    ).read_bytes()
    http_server.route(
        "/v3/carbon-intensity/history", Reply(503, b"busy"), Reply(502), Reply(200, body)
    )
    sleeps: list[float] = []
    client = em(http_server, sleeps)
    assert len(client.history("DE").strict()) == 24
    assert client.fetcher.attempts == 3 and sleeps == [0.5, 1.0]


def test_429_honours_retry_after(http_server: ScriptedServer, shared_data: Path) -> None:
    body = (
        shared_data / "electricitymaps/aioelectricitymaps_latest_carbon_intensity_US-CAR-DUK.json"
    ).read_bytes()
    http_server.route(
        "/v3/carbon-intensity/latest",
        Reply(429, b"slow down", {"Retry-After": "2"}),
        Reply(200, body),
    )
    sleeps: list[float] = []
    assert em(http_server, sleeps).latest("US-CAR-DUK").strict()[0].value_g_per_kwh == 216
    assert sleeps == [2.0]


def test_gives_up_after_bounded_attempts(http_server: ScriptedServer) -> None:
    http_server.route("/v3/carbon-intensity/history", Reply(500, b"oops"))
    sleeps: list[float] = []
    client = em(http_server, sleeps, max_attempts=3)
    with pytest.raises(ProviderError, match=r"gave up after 3 attempts.*returned 500"):
        client.history("DE")
    assert len(http_server.hits("/v3/carbon-intensity/history")) == 3 and sleeps == [0.5, 1.0]


def test_401_is_not_retried_and_hides_the_token(http_server: ScriptedServer) -> None:
    http_server.route("/v3/carbon-intensity/history", Reply(401, b'{"message":"bad token"}'))
    with pytest.raises(ProviderAuthError, match="returned 401") as info:
        em(http_server, []).history("DE")
    assert TOKEN not in str(info.value)
    assert len(http_server.hits("/v3/carbon-intensity/history")) == 1


def test_other_4xx_is_a_clear_error(http_server: ScriptedServer) -> None:
    http_server.route("/v3/carbon-intensity/history", Reply(400, b"zone unknown"))
    with pytest.raises(ProviderError, match=r"400.*zone unknown"):
        em(http_server, []).history("XX")


def test_timeouts_are_retried_then_reported(http_server: ScriptedServer) -> None:
    http_server.route("/v3/carbon-intensity/history", Reply(200, b"{}", delay_s=1.0))
    sleeps: list[float] = []
    client = em(http_server, sleeps, timeout_s=0.2, max_attempts=2)
    with pytest.raises(ProviderError, match="gave up after 2 attempts: timed out"):
        client.history("DE")
    assert sleeps == [0.5]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"zone":"DE","history":[{"carbonIn', "malformed JSON"),
        (b"<html>gateway</html>", "malformed JSON"),
        (
            b'{"zone":"DE","history":[{"carbonIntensity":null,"datetime":"2024-03-05T20:00:00Z"}]}',
            r"history\[0\]\.carbonIntensity: value is null",
        ),
    ],
)
def test_malformed_bodies(http_server: ScriptedServer, body: bytes, message: str) -> None:
    http_server.route("/v3/carbon-intensity/history", Reply(200, body))
    with pytest.raises(SeriesError, match=message):
        em(http_server, []).history("DE").strict()


def test_connection_refused_is_retried_and_reported() -> None:
    config = ProviderSettings(base_url="http://127.0.0.1:9/v3", token=TOKEN)  # type: ignore[arg-type]
    sleeps: list[float] = []
    client = ElectricityMapsClient(config, fetcher("electricitymaps", sleeps, max_attempts=2), now)
    with pytest.raises(ProviderError, match="connection failed"):
        client.history("DE")


def test_missing_token_is_an_auth_error() -> None:
    with pytest.raises(ProviderAuthError, match="no token"):
        ElectricityMapsClient(ProviderSettings(), Fetcher("electricitymaps"), now)


def test_uk_national_and_regional_paths(http_server: ScriptedServer, carbon_data: Path) -> None:
    http_server.route(
        "/intensity/2018-01-20T12:00Z/2018-01-20T13:00Z",
        Reply(200, (carbon_data / "ukci_national.json").read_bytes()),
    )
    http_server.route(
        "/regional/intensity/2019-08-25T12:30Z/2019-08-25T13:30Z/regionid/13",
        Reply(200, (carbon_data / "ukci_region_one.json").read_bytes()),
    )
    client = UkCarbonIntensityClient(
        ProviderSettings(base_url=http_server.url), fetcher("uk-carbon-intensity", []), now
    )
    national = client.series(
        "GB", datetime(2018, 1, 20, 12, tzinfo=UTC), datetime(2018, 1, 20, 13, tzinfo=UTC)
    ).strict()
    assert [p.value_g_per_kwh for p in national] == [263, 270]
    regional = client.series(
        "GB-R13",
        datetime(2019, 8, 25, 12, 30, tzinfo=UTC),
        datetime(2019, 8, 25, 13, 30, tzinfo=UTC),
    ).strict()
    assert [p.value_g_per_kwh for p in regional] == [180, 175]
    with pytest.raises(ProviderError, match="unknown zone"):
        client.series("GB-London", NOW, NOW.replace(hour=1))


def test_rte_pages_through_total_count(http_server: ScriptedServer) -> None:
    def page(start_minute: int, n: int) -> bytes:
        rows = ",".join(
            f'{{"date_heure":"2025-10-04T{(start_minute + 15 * i) // 60:02d}:'
            f'{(start_minute + 15 * i) % 60:02d}:00+00:00","taux_co2":{14 + i % 2}}}'
            for i in range(n)
        )
        return f'{{"total_count":150,"results":[{rows}]}}'.encode()

    path = "/catalog/datasets/eco2mix-national-tr/records"
    http_server.route(path, Reply(200, page(0, 40)), Reply(200, page(750, 40)))
    client = RteClient(ProviderSettings(base_url=http_server.url), fetcher("rte", []), now)
    points = client.series(
        "FR", datetime(2025, 10, 4, tzinfo=UTC), datetime(2025, 10, 4, 23, tzinfo=UTC)
    ).strict()
    assert len(points) == 80
    hits = http_server.hits(path)
    assert [h.query["offset"] for h in hits] == [["0"], ["100"]]
    assert "date_heure >= date'2025-10-04T00:00:00Z'" in hits[0].query["where"][0]


def test_watttime_login_bearer_and_relogin_on_401(
    http_server: ScriptedServer, carbon_data: Path
) -> None:
    http_server.route("/login", Reply(200, b'{"token":"t1"}'), Reply(200, b'{"token":"t2"}'))
    http_server.route(
        "/v3/historical",
        Reply(401, b"expired"),
        Reply(200, (carbon_data / "watttime_historical.json").read_bytes()),
    )
    config = ProviderSettings(base_url=http_server.url, username="u", password="p")  # type: ignore[arg-type]
    client = WattTimeClient(config, fetcher("watttime", []), now)
    points = client.historical(
        "CAISO_NORTH", datetime(2022, 7, 15, tzinfo=UTC), datetime(2022, 7, 15, 1, tzinfo=UTC)
    ).strict()
    assert points[0].value_g_per_kwh == pytest.approx(870 * 0.45359237)
    logins = http_server.hits("/login")
    assert len(logins) == 2
    assert logins[0].headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    data = http_server.hits("/v3/historical")
    assert [h.headers["authorization"] for h in data] == ["Bearer t1", "Bearer t2"]
    assert data[0].query["signal_type"] == ["co2_moer"]


def test_fetch_series_dispatch(http_server: ScriptedServer, carbon_data: Path) -> None:
    http_server.route(
        "/intensity/2018-01-20T12:00Z/2018-01-20T13:00Z",
        Reply(200, (carbon_data / "ukci_national.json").read_bytes()),
    )
    parsed = fetch_series(
        "uk-carbon-intensity",
        "GB",
        datetime(2018, 1, 20, 12, tzinfo=UTC),
        datetime(2018, 1, 20, 13, tzinfo=UTC),
        ProviderSettings(base_url=http_server.url),
        now,
    )
    assert len(parsed.points) == 2
    with pytest.raises(ValueError, match="unknown provider"):
        fetch_series("nope", "GB", NOW, NOW.replace(hour=1), ProviderSettings(), now)


def test_recent_window_uses_history_endpoint(
    http_server: ScriptedServer, shared_data: Path
) -> None:
    body = (
        shared_data / "electricitymaps/aioelectricitymaps_carbon_intensity_history_DE.json"
    ).read_bytes()
    http_server.route("/v3/carbon-intensity/history", Reply(200, body))
    config = ProviderSettings(base_url=http_server.url + "/v3", token=TOKEN)  # type: ignore[arg-type]
    at = datetime(2024, 3, 6, 19, 30, tzinfo=UTC)
    client = ElectricityMapsClient(config, fetcher("electricitymaps", []), lambda: at)
    got = client.series("DE", datetime(2024, 3, 6, 17, tzinfo=UTC), at).strict()
    assert [p.start_at.hour for p in got] == [17, 18, 19]
    assert http_server.hits("/v3/carbon-intensity/past-range") == []


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobcarbon.settings import Settings

    monkeypatch.setenv("JOBCARBON_CARBON__PROVIDERS__electricitymaps__TOKEN", TOKEN)
    config = Settings().carbon.provider("electricitymaps")
    assert config.token is not None and config.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(config)
