"""A run folder belongs to one run: training again into it is refused and changes
nothing, --overwrite starts a clean run there, --resume continues to the exact step;
and what hjr writes is readable by other users."""

import json
import os
import stat

import pytest
from conftest import SMALL_SYNTHETIC

from hjr import runs
from hjr.cli import main


def _snapshot(folder):
    """{relative path: (size, mtime)} of every file below folder."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _train(run_dir, data_dir, *extra, steps=2):
    argv = ["train", "--preset", "quick", "--head", "fc", "--backbone", "tiny"]
    argv += ["--data", SMALL_SYNTHETIC, "--data-dir", str(data_dir)]
    argv += ["--batch-size", "8", "--steps", str(steps), "--eval-every", "2"]
    return main([*argv, "--out", str(run_dir), *extra])


@pytest.mark.slow
def test_training_into_a_run_is_refused_overwritten_or_resumed(
    tmp_path, data_dir, capsys
):
    run_dir = tmp_path / "run"
    assert _train(run_dir, data_dir, steps=4) == 0
    assert runs.read_best(run_dir)["step"] in (2, 4)
    before = _snapshot(run_dir)
    capsys.readouterr()

    # Again, with other settings: refused in one line, nothing changed.
    assert _train(run_dir, data_dir, "--lr", "0.01", steps=2) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err, err
    assert len(err.strip().splitlines()) == 1
    assert _snapshot(run_dir) == before

    # --overwrite: a clean run, nothing of the old one left.
    (run_dir / "notes.txt").write_text("mine\n")  # not the run's: kept
    assert _train(run_dir, data_dir, "--overwrite", "--lr", "0.01", steps=2) == 0
    conf = json.loads((run_dir / "config.json").read_text())
    assert conf["lr"] == 0.01 and conf["steps"] == 2
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 2 and history[1].startswith("2,")  # one validation
    steps = sorted(p.name for p in (run_dir / "checkpoints").rglob("step-*"))
    assert steps == ["step-00000002", "step-00000002"]  # best and latest
    assert runs.read_best(run_dir)["step"] == 2
    assert (run_dir / "notes.txt").read_text() == "mine\n"

    # --resume: continues to the exact step.
    resume = ["train", "--resume", str(run_dir), "--data-dir", str(data_dir)]
    assert main([*resume, "--steps", "4"]) == 0
    latest = runs.checkpoint(run_dir, "latest")
    assert latest.name == "step-00000004"
    history = (run_dir / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["2", "4"]
    out = capsys.readouterr().out
    assert "trained steps 2..4" in out, out


def test_a_new_run_where_a_run_was_is_refused_from_python(tmp_path):
    from data_pipeline.errors import UserError
    from hjr.training.train import run

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)  # what a run left
    with pytest.raises(UserError, match="holds a run already"):
        run(tmp_path / "run", "quick", {"head": "fc"})


@pytest.mark.slow
def test_what_hjr_writes_is_readable_by_others(tmp_path, data_dir):
    """Prepared data, the run folder and its checkpoints, an export: every folder
    o+rx and every file o+r under the usual umask (tempfile's 0700 folders and 0600
    files would lock out another uid, e.g. another container user)."""
    old = os.umask(0o022)
    try:
        assert _train(tmp_path / "run", data_dir) == 0
        export = tmp_path / "export.onnx"
        argv = ["export", "--model", str(tmp_path / "run"), "--format", "onnx"]
        assert main([*argv, "--out", str(export)]) == 0
    finally:
        os.umask(old)
    closed = []
    for folder in (data_dir, tmp_path / "run"):
        for path in [folder, export, *folder.rglob("*")]:
            mode = path.stat().st_mode
            need = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
            if mode & need != need:
                closed.append(f"{oct(mode)} {path}")
    assert not closed, "\n".join(closed)
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    assert not leftovers, leftovers
