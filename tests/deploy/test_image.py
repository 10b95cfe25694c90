"""The production image's build context: the files the Dockerfile copies build the package
(no engine here, so the image's ``pip install`` step is run on a copy of that context), and
every install path pins the versions that were tested."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO

#: What a wheel of jobcarbon must carry (packages, their data files, the license).
_WANTED = (
    "schemas/avro/",
    "consumers/stream/hot_path.py",
    "warehouse/migrations/",
    "jobcarbon/cli/",
    ".dist-info/licenses/LICENSE",
)


def dockerfile_copies() -> list[str]:
    """The repository paths the Dockerfile ``COPY``s into the image (``--from`` excluded)."""
    sources: list[str] = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        *copied, dest = words[1:]
        # The image's WORKDIR mirrors the repository: a file goes to ./, a folder to its name.
        assert all(dest in ("./", src) for src in copied), line
        sources += copied
    return sources


def test_dockerfile_context_builds_a_complete_wheel(tmp_path: Path) -> None:
    context = tmp_path / "context"
    for source in dockerfile_copies():
        origin, target = REPO / source, context / source
        assert origin.exists(), f"the Dockerfile copies {source}, which does not exist"
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = built.stdout + built.stderr
    assert built.returncode == 0, output[-3000:]
    # setuptools turns a license file missing from the context into an error in 2027-02.
    assert "did not match any files" not in output, output[-3000:]
    (wheel,) = (tmp_path / "dist").glob("jobcarbon-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for wanted in _WANTED:
        assert any(wanted in name for name in names), f"{wanted} missing from {wheel.name}"


def test_every_install_path_uses_the_pinned_versions() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install .*-c constraints\.txt", dockerfile, re.M), dockerfile
    assert "constraints.txt" in dockerfile_copies()
    bootstrap = (REPO / "scripts" / "bootstrap.sh").read_text()
    assert "-c constraints.txt" in bootstrap
    pins = [
        line
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^\s=]+", p) for p in pins), pins
    pinned = {re.split(r"[=\[]", p, maxsplit=1)[0].lower().replace("_", "-") for p in pins}
    for runtime in ("confluent-kafka", "faust-streaming", "sqlalchemy", "psycopg", "pyarrow"):
        assert runtime in pinned, runtime
