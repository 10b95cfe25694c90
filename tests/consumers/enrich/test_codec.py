"""grid.intensity / facility.power message round trip and bad messages."""

from datetime import UTC, datetime, timedelta

import pytest

from consumers.enrich.codec import decode_point, decode_pue, encode_point, intensity_key
from consumers.enrich.model import IntensityPoint, PuePoint, SeriesError

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_round_trip() -> None:
    p = IntensityPoint(
        provider="rte",
        zone="FR",
        signal="average",
        basis="direct",
        start_at=T0,
        end_at=T0 + timedelta(minutes=15),
        value_g_per_kwh=14.0,
        fetched_at=T0,
    )
    assert decode_point(encode_point(p)) == p
    assert intensity_key(p) == b"rte:FR:average"
    q = PuePoint(site="s", start_at=T0, end_at=T0 + timedelta(hours=1), pue=1.2)
    assert decode_pue(encode_point(q)) == q


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "grid.intensity message"),
        (
            b'{"provider":"p","zone":"z","signal":"hourly","basis":null,'
            b'"start_at":"2024-01-01T00:00:00Z","end_at":"2024-01-01T01:00:00Z",'
            b'"value_g_per_kwh":1}',
            "signal",
        ),
        (
            b'{"provider":"p","zone":"z","signal":"average","basis":null,'
            b'"start_at":"2024-01-01T00:00:00","end_at":"2024-01-01T01:00:00Z",'
            b'"value_g_per_kwh":1}',
            "time zone",
        ),
        (
            b'{"provider":"p","zone":"z","signal":"average","basis":null,'
            b'"start_at":"2024-01-01T01:00:00Z","end_at":"2024-01-01T01:00:00Z",'
            b'"value_g_per_kwh":1}',
            "after start_at",
        ),
    ],
)
def test_bad_messages(raw: bytes, message: str) -> None:
    with pytest.raises(SeriesError, match=message):
        decode_point(raw)
