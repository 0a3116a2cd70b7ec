"""Every flag is declared once (hjr.cli.flags) and checked before any work: a bad
value, a --data that does not parse, a flag without the one it needs each get one
line and exit status 2, before TensorFlow starts."""

import argparse
import json

import pytest
from conftest import run_python

from hjr.cli import COMMANDS, build_parser, main
from hjr.cli.flags import FLAGS


def _commands():
    return build_parser()._subparsers._group_actions[0].choices


def _flags(command):
    return [
        action
        for action in _commands()[command]._actions
        if action.option_strings and action.dest != "help"
    ]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_has_help(command):
    for action in _flags(command):
        assert (
            action.help
            and action.help != argparse.SUPPRESS
            or (action.dest == "verbose")
        ), (command, action.option_strings)


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if "data" in COMMANDS[c].FLAGS]
)
def test_every_data_flag_names_every_source(command):
    data = next(a for a in _flags(command) if a.dest == "data")
    text = " ".join(data.help.split())
    for source in ("synthetic", "training.h5", "RHD_published_v2", "coco:"):
        assert source in text, (command, source)
    # only the commands that read a video name it
    assert ("video:" in text) == (command in ("predict", "browse")), command


def test_a_shared_flag_reads_and_defaults_the_same_everywhere():
    """--batch-size, --tta, --data, --split: one declaration each; a command may
    only choose its own default where the flag says what it reads (the split)."""
    for key in ("batch_size", "tta", "data", "box_seed", "shift", "scale"):
        takers = [name for name, module in COMMANDS.items() if key in module.FLAGS]
        assert len(takers) >= 2, key
        helps = set()
        for name in takers:
            action = next(a for a in _flags(name) if a.dest == key)
            # the commands that also read a video add that source to --data's help
            helps.add(action.help.split(" (default")[0].split("; here also video:")[0])
        assert len(helps) == 1, (key, helps)
    sizes = {
        COMMANDS[name].FLAGS["batch_size"].default
        for name in ("predict", "evaluate", "bench")
    }
    assert sizes == {FLAGS["batch_size"].default} == {32}


BAD = [
    (["predict", "--model", "{run}", "--out", "o.csv", "--box-seed", "-1",
      "--shift", "4"], "--box-seed -1: expected a whole number of at least 0"),
    (["browse", "--out", "b", "--augment", "--seed", "-3"], "--seed -3: expected"),
    (["train", "--head", "fc", "--seed", "-1"], "--seed -1: expected"),
    (["predict", "--model", "{run}", "--out", "o.csv", "--batch-size", "0"],
     "--batch-size 0: expected a whole number of at least 1"),
    (["browse", "--out", "b", "--num", "0"], "--num 0: expected"),
    (["train", "--head", "fc", "--steps", "0"], "--steps 0: expected"),
    (["bench", "--loader", "--workers", "0"], "--workers 0: expected"),
    (["train", "--head", "fc", "--data", "/no/such/folder"],
     "--data /no/such/folder: no such folder"),
    (["prepare", "--data", "coco:/no/such.json"], "no such annotation file"),
    (["evaluate", "--predictions", "/no/such.csv"], "--predictions /no/such.csv"),
    (["browse", "--out", "b", "--flip"], "--flip needs --augment"),
    (["browse", "--out", "b", "--max-angle", "10"], "--max-angle needs --augment"),
    (["predict", "--model", "{run}", "--out", "o.csv", "--box-seed", "3"],
     "--box-seed needs --shift or --scale"),
    (["reproduce", "--box-jitter", "8,1.1"], "--box-jitter needs --robustness"),
    (["bench", "--workers", "2"], "--workers needs --loader"),
    (["bench", "--precision", "mixed_float16"], "--precision needs --train-step"),
    (["evaluate", "--predictions", "{csv}", "--no-tta"], "--tta needs --model"),
    (["export", "--model", "{run}", "--out", "x.onnx", "--format", "onnx", "--crop",
      "centered"], "--crop needs --quantize"),
    (["train", "--resume", "{run}", "--overwrite"], "not with --resume"),
    (["evaluate"], "give one of --model and --predictions"),
]  # fmt: skip


@pytest.mark.parametrize("argv, expected", BAD)
def test_a_bad_flag_is_one_line_before_any_work(
    argv, expected, tmp_path, capsys, monkeypatch
):
    (tmp_path / "p.csv").write_text("Id\n")
    (tmp_path / "run").mkdir()
    argv = [a.format(csv=tmp_path / "p.csv", run=tmp_path / "run") for a in argv]
    monkeypatch.setenv("HJR_DATA_DIR", str(tmp_path / "never"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "never").exists()  # nothing was prepared


def test_bad_flags_are_refused_before_tensorflow_starts(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    argvs = [[a.replace("{run}", str(run)) for a in argv] for argv, _ in BAD]
    argvs = [argv for argv in argvs if "{" not in " ".join(argv)]
    code = (
        "import json, sys\n"
        "from hjr.cli import main\n"
        f"statuses = [main(a) for a in json.loads({json.dumps(json.dumps(argvs))})]\n"
        "print(statuses)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'jax')))\n"
    )
    proc = run_python(code, HJR_DATA_DIR=str(tmp_path / "data"))
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == str([2] * len(argvs)), proc.stdout + proc.stderr
    assert lines[-1] == "[]", lines[-1]
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == len(argvs)


def test_every_flag_is_declared_in_one_place():
    """The command modules take their shared flags from hjr.cli.flags: no module
    calls argparse itself."""
    import inspect

    for name, module in COMMANDS.items():
        source = inspect.getsource(module)
        assert "add_argument" not in source and "argparse" not in source, name
