"""The HTML report opened in real headless Chromium: the screenshot shows the plots.

Checks pixels, not files: the plots' line/bar colours must cover real areas in two columns
and three rows of figures, and a control copy of the same page with the SVGs removed must
show none of them (so the test fails if the SVGs do not render).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import unavailable
from warehouse.reports.report import ReportSummary

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1400, 3000
BLUE = (0x1F, 0x77, 0xB4)  # html.METERED
ORANGE = (0xFF, 0x7F, 0x0E)  # html.ATTRIBUTED


def screenshot(html: Path, png: Path) -> np.ndarray:
    """Render ``html`` in a fresh headless Chromium profile; return RGB pixels."""
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} not installed (scripts/install.d/70-chromium.sh)")
    profile = tempfile.mkdtemp(prefix="jc-chromium-")
    try:
        proc = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                f"--window-size={WIDTH},{HEIGHT}",
                html.resolve().as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if not png.exists():
        unavailable(
            f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-500:]!r}"
        )
    return np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)


def near(pixels: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> np.ndarray:
    return np.abs(pixels - np.array(rgb)).sum(axis=2) <= tol


def bands(mask: np.ndarray, min_gap: int = 15) -> int:
    """Vertical bands of rows that contain masked pixels, separated by >= ``min_gap`` rows."""
    rows = np.flatnonzero(mask.sum(axis=1) > 3)
    if len(rows) == 0:
        return 0
    return 1 + int((np.diff(rows) > min_gap).sum())


def test_screenshot_shows_the_plots(room_report: ReportSummary, tmp_path: Path) -> None:
    pixels = screenshot(room_report.html_path, tmp_path / "report.png")
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    blue, orange = near(pixels, BLUE), near(pixels, ORANGE)
    # Lines, bars and points in the plot colours, in both columns of the plot grid...
    assert blue[:, : WIDTH // 2].sum() > 2_000 and blue[:, WIDTH // 2 :].sum() > 2_000
    assert orange.sum() > 1_000
    # ...and in three rows of figures.
    assert bands(blue) >= 3
    # Inside the plot area, a real share of pixels is drawn (not background).
    ys, xs = np.nonzero(blue)
    region = pixels[ys.min() : ys.max(), xs.min() : xs.max()]
    drawn = (np.abs(region - 255).sum(axis=2) > 30).mean()
    assert drawn > 0.08, f"only {drawn:.1%} of the plot area is drawn"

    # Control: the same page without its SVGs shows none of that.
    page = room_report.html_path.read_text()
    stripped = re.sub(r"<svg.*?</svg>", "<div style='height:330px'></div>", page, flags=re.S)
    control_html = tmp_path / "control.html"
    control_html.write_text(stripped)
    control = screenshot(control_html, tmp_path / "control.png")
    assert near(control, BLUE).sum() < 50 and near(control, ORANGE).sum() < 50
