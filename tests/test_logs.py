"""Output for a terminal and for a log file: Keras's and tqdm's bars on a terminal;
off one (Docker without -t, Slurm, nohup, CI), plain lines with no carriage return
and no escape code."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest
from conftest import SMALL_SYNTHETIC

CODE = "import sys; from hjr.cli import main; sys.exit(main(sys.argv[1:]))"


def _hjr(argv, terminal: bool):
    """(exit status, everything hjr wrote to stdout and stderr) of `hjr ARGV` in a
    fresh process, its output a pipe or (terminal) a pseudo-terminal."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-c", CODE, *map(str, argv)]
    if not terminal:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            timeout=600,
        )  # fmt: skip
        return done.returncode, done.stdout.decode()
    leader, follower = pty.openpty()
    size = struct.pack("HHHH", 24, 100, 0, 0)  # rows, columns: a terminal's window
    fcntl.ioctl(follower, termios.TIOCSWINSZ, size)
    process = subprocess.Popen(
        command, stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=600), b"".join(chunks).decode(errors="replace")


def _train_argv(tmp_path, name):
    return [
        "train", "--preset", "quick", "--head", "fc", "--backbone", "tiny",
        "--data", SMALL_SYNTHETIC, "--data-dir", tmp_path / "data",
        "--batch-size", "8", "--steps", "6", "--eval-every", "2",
        "--out", tmp_path / name,
    ]  # fmt: skip


@pytest.mark.slow
def test_train_off_a_terminal_writes_plain_lines(tmp_path):
    status, log = _hjr(_train_argv(tmp_path, "run"), terminal=False)
    assert status == 0, log
    assert "\r" not in log and "\x1b" not in log, repr(log[-2000:])
    lines = log.splitlines()
    steps = [line for line in lines if line.startswith("hjr: step ")]
    assert [line.split(",")[0] for line in steps] == [
        f"hjr: step {n}/6" for n in (2, 4, 6)
    ], log
    for line in steps:
        for part in ("loss ", "val_kaggle_mse ", "images/s", "elapsed ", "left "):
            assert part in line, line
    assert any(line.startswith("hjr: training hjr_fc") for line in lines)  # start
    assert lines[-1].startswith("hjr: trained steps 0..6"), lines[-1]  # end
    assert len(log.encode()) < 6000, len(log.encode())  # a few lines, not a bar


@pytest.mark.slow
def test_train_on_a_terminal_keeps_the_progress_bars(tmp_path):
    status, log = _hjr(_train_argv(tmp_path, "run"), terminal=True)
    assert status == 0, log
    bar = "\x1b[1m2/2\x1b[0m"  # Keras's bar: its step counter, in bold
    assert bar in log and "━" in log and "\r\x1b[1m" in log, repr(log[-3000:])
    assert "hjr: step 2/6" not in log  # its own lines stand in for the bar only


@pytest.mark.parametrize("terminal", [False, True])
def test_prepare_shows_progress_as_lines_or_a_bar(tmp_path, terminal):
    argv = ["prepare", "--data", SMALL_SYNTHETIC, "--data-dir", tmp_path / "data"]
    status, log = _hjr(argv, terminal)
    assert status == 0, log
    if terminal:
        assert "\rhjr: train:   0%|" in log and "crops/s]\r" in log  # tqdm's bar
        return
    assert "\r" not in log and "\x1b" not in log, repr(log)
    train = [line for line in log.splitlines() if line.startswith("hjr: train: ")]
    tenths = [f"hjr: train: {n}/40 crops ({n * 10 // 4}%)" for n in range(4, 40, 4)]
    assert [line.split(",")[0] for line in train[:-1]] == tenths, log
    assert train[-1].startswith("hjr: train: 40 crops in "), train[-1]


@pytest.mark.slow
def test_the_demo_off_a_terminal_writes_a_short_plain_log(tmp_path):
    argv = ["demo", "--steps", "4", "--data", SMALL_SYNTHETIC]
    argv += ["--data-dir", tmp_path / "data", "--out", tmp_path / "demo"]
    status, log = _hjr(argv, terminal=False)
    assert status == 0, log
    assert "\r" not in log and "\x1b" not in log, repr(log[-2000:])
    assert "hjr demo: done in" in log and "hjr: step 4/4" in log
    assert len(log.encode()) < 50_000, len(log.encode())
