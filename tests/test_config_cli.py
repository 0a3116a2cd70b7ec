"""One place resolves a run's configuration (hjr.config.configure); the CLI checks
its flags before any work, names them in its errors, and keeps TensorFlow quiet."""

import json
import re

import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC, run_python, train_small_run

from data_pipeline.errors import UserError
from hjr.cli import build_parser, main
from hjr.config import CHOICES, PRESETS, RESUMABLE, configure
from hjr.core.heads import HEADS
from hjr.runs import load_config, run_config

# -- configure ---------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
def test_a_head_brings_its_own_settings(head):
    conf = configure("quick", {"head": head})
    assert conf["head"] == head and conf["preset"] == "quick"
    own = PRESETS["quick"]["heads"].get(head, {})
    for key in ("backbone", "lr", "steps"):  # the head's own, else the preset's
        assert conf[key] == own.get(key, PRESETS["quick"][key])
    assert all(conf[key] == value for key, value in own.items())
    assert conf["flip"] is (head in ("fc", "scoremap"))  # mirrored: the long runs
    for key, value in HEADS[head].defaults.items():  # the preset's where it has one
        assert conf[key] == PRESETS["quick"].get(key, value)
    mine = configure("quick", {"head": head, "backbone": "small", "lr": 1e-3})
    assert (mine["backbone"], mine["lr"]) == ("small", 1e-3)  # flags win
    paper = configure("paper", {"head": head})
    assert all(paper[k] == v for k, v in HEADS[head].defaults.items())
    others = {k for name, h in HEADS.items() if name != head for k in h.defaults}
    assert not (others - set(HEADS[head].defaults)) & set(conf)


def test_settings_of_another_head_are_refused():
    with pytest.raises(UserError, match="a setting of the scoremap head, not of fc"):
        configure("quick", {"head": "fc", "sigma2": 8.0})
    with pytest.raises(UserError, match="of the classification and offsets heads"):
        configure("quick", {"head": "fc", "radius": 8.0})
    assert "map_stride" not in configure("quick", {"head": "fc"})
    assert configure("quick", {"head": "classification", "radius": 8.0})["radius"] == 8


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"head": "mlp"}, "head"),
        ({"backbone": "vgg"}, "backbone"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"precision": "float8"}, "precision"),
        ({"strategy": "magic"}, "strategy"),
        ({"crop": "square"}, "crop"),
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"beta_2": 1.0}, "beta_2"),
        ({"max_angle": 400.0}, "max_angle"),
        ({"augment": None}, "augment"),
        ({"flip": "yes"}, "flip"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_library_errors_name_the_setting_not_a_flag(overrides, key):
    with pytest.raises(UserError) as error:
        configure("quick", overrides)
    assert error.value.key == key
    assert str(error.value).startswith(f"{key} ") and "--" not in str(error.value)


@pytest.mark.parametrize("optimizer", ["adam", "nadam"])
def test_adam_takes_its_beta_2_and_rmsprop_refuses_it(optimizer):
    from hjr.training.distribute import make_strategy
    from hjr.training.step import build_trainer

    overrides = {"head": "fc", "backbone": "tiny", "beta_2": 0.95}
    conf = configure("quick", {**overrides, "optimizer": optimizer})
    _, trainer = build_trainer(conf, make_strategy("one-device"))
    assert trainer.optimizer.beta_2 == 0.95
    assert type(trainer.optimizer).__name__.lower() == optimizer
    # Keras's default where a preset leaves it: an optimizer switched to adam
    assert configure("paper", {"head": "fc", "optimizer": "adam"})["beta_2"] == 0.999
    with pytest.raises(
        UserError, match="of the adam and nadam optimizers, not of rmsprop"
    ) as error:
        configure("paper", {"head": "fc", "beta_2": 0.95})
    assert error.value.key == "beta_2"


def test_weight_decay_shrinks_the_kernels_only():
    """Decoupled weight decay: with zero gradients (no Adam step) every kernel
    shrinks by weight_decay x lr, BatchNorm's gamma and beta and the biases stay."""
    import keras

    from hjr.training.distribute import make_strategy
    from hjr.training.step import build_trainer

    overrides = {"head": "offsets", "optimizer": "nadam", "weight_decay": 0.5}
    conf = configure(
        "quick", {**overrides, "warmup_steps": 0, "lr_schedule": "constant"}
    )
    _, trainer = build_trainer(conf, make_strategy("one-device"))
    variables = trainer.trainable_variables
    before = [keras.ops.convert_to_numpy(v) for v in variables]
    zeros = [keras.ops.zeros_like(v) for v in variables]
    trainer.optimizer.apply_gradients(zip(zeros, variables))
    names = set()
    for variable, old in zip(variables, before):
        ratio = 1.0 - 0.5 * conf["lr"] if variable.name == "kernel" else 1.0
        np.testing.assert_allclose(variable, old * ratio, rtol=1e-6, atol=1e-9)
        names.add(variable.name)
    assert {"kernel", "gamma", "beta", "bias"} <= names
    with pytest.raises(UserError, match="expected a non-negative number"):
        configure("quick", {"weight_decay": -1.0})


def test_augmentation_off_is_false_not_none():
    assert configure("quick", {"augment": False})["augment"] is False
    assert configure("quick", {})["augment"] is True


@pytest.mark.slow
def test_resume_applies_what_may_change_and_refuses_the_rest(tmp_path, data_dir):
    run = train_small_run(tmp_path / "run", data_dir, head="fc", steps=2)
    conf = run_config(run, overrides={"steps": 6, "jit": "off"}, resume=True)
    assert conf["steps"] == 6 and conf["jit"] == "off"
    assert set(RESUMABLE) >= {"steps", "jit"}
    same = {"head": "fc", "data": SMALL_SYNTHETIC, "batch_size": 8}
    assert run_config(run, "quick", same, resume=True)["batch_size"] == 8
    for key, value in [("head", "scoremap"), ("lr", 0.5), ("augment", False)]:
        with pytest.raises(UserError, match=f"the run in {run} has {key}") as error:
            run_config(run, overrides={key: value}, resume=True)
        assert error.value.key == key
    with pytest.raises(UserError, match="uses the quick preset"):
        run_config(run, "paper", resume=True)
    saved = json.loads((run / "config.json").read_text())
    assert "data_dir" not in saved and saved["augment"] is True


def test_a_preset_warm_up_keeps_its_share_of_other_steps():
    quick = configure("quick", {"head": "scoremap"})
    assert quick["warmup_steps"] / quick["steps"] == pytest.approx(0.3)
    longer = configure("quick", {"head": "scoremap", "steps": 2 * quick["steps"]})
    assert longer["warmup_steps"] == 2 * quick["warmup_steps"]
    given = configure("quick", {"head": "scoremap", "steps": 100, "warmup_steps": 7})
    assert given["warmup_steps"] == 7
    assert configure("paper", {"steps": 50})["warmup_steps"] == 0


# -- the CLI -----------------------------------------------------------------


def test_the_help_lists_every_choice_from_one_place():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    text = train.format_help()
    for key in ("head", "backbone", "optimizer", "precision", "strategy", "crop"):
        for choice in CHOICES[key]:
            assert choice in text, (key, choice)
    for name in PRESETS:
        assert name in text
    for head in HEADS.values():
        assert head.summary.split()[0] in text


BAD_FLAGS = [
    (["train", "--head", "nonsense"], "--head", "classification"),
    (["train", "--head", "fc", "--preset", "slow"], "--preset", "quick"),
    (["train", "--head", "fc", "--backbone", "vgg"], "--backbone", "resnet152v2"),
    (["train", "--head", "fc", "--precision", "f8"], "--precision", "mixed_bfloat16"),
    (["train", "--head", "fc", "--strategy", "magic"], "--strategy", "mirrored"),
    (["train", "--head", "fc", "--optimizer", "sgd"], "--optimizer", "adam"),
    (["train", "--head", "fc", "--crop", "square"], "--crop", "centered"),
    (["predict", "--model", "m", "--out", "o", "--split", "val"], "--split", "test"),
    (["demo", "--head", "mlp"], "--head", "scoremap"),
    (["train", "--head", "fc", "--lr", "-1"], "--lr -1.0", "non-negative"),
    (["train", "--head", "fc", "--max-angle", "400"], "--max-angle 400.0", "0..180"),
    (["train", "--head", "fc", "--bn-refresh", "-8"], "--bn-refresh -8", "at least 0"),
    (["train", "--head", "fc", "--beta-2", "0.9"], "--beta-2 0.9", "adam optimizer"),
    (
        ["train", "--head", "offsets", "--backbone", "tiny_unet", "--map-stride", "8"],
        "--map-stride 8",
        "expected 1, 2 or 4",
    ),
]


@pytest.mark.parametrize("argv, flag, expected", BAD_FLAGS)
def test_a_bad_flag_is_one_line_naming_it(argv, flag, expected, capsys, tmp_path):
    assert main([*argv, "--data-dir", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert flag in err and expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "never").exists()  # no data was prepared


def test_a_bad_flag_answers_without_starting_tensorflow():
    code = (
        "import sys, time; start = time.monotonic()\n"
        "from hjr.cli import main\n"
        "status = main(['train', '--head', 'nonsense', '--data', 'synthetic'])\n"
        "help = main(['--help'])\n"
        "print(status, help, time.monotonic() - start)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'tensorflow_datasets')))\n"
    )
    proc = run_python(code)
    lines = proc.stdout.strip().splitlines()
    status, help_status, seconds = lines[-2].split()
    assert (status, help_status) == ("2", "0"), proc.stdout + proc.stderr
    assert lines[-1] == "[]", lines[-1]
    print(f"bad flag and --help: {float(seconds):.2f} s")  # about a second


TF_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN|cuInit|cuda", re.M)


@pytest.mark.slow
def test_commands_print_no_tensorflow_start_up_lines(tmp_path):
    argv = [
        "browse", "--data", "synthetic:train=8,validation=2,test=2", "--split", "test",
        "--num", "2", "--out", str(tmp_path / "b"), "--data-dir", str(tmp_path / "d"),
    ]  # fmt: skip
    code = f"import sys; from hjr.cli import main; sys.exit(main({argv!r}))"
    quiet = run_python(code, HJR_VERBOSE="0")
    assert quiet.returncode == 0, quiet.stderr
    assert not TF_LINE.search(quiet.stderr), quiet.stderr
    assert "hjr: wrote 2 of 2 test samples" in quiet.stdout
    verbose = run_python(code.replace("main([", "main(['-v', "), HJR_VERBOSE="0")
    assert verbose.returncode == 0, verbose.stderr
    assert TF_LINE.search(verbose.stderr), verbose.stderr  # TensorFlow's own lines


@pytest.mark.slow
def test_flags_given_with_resume_are_applied_or_refused_by_name(
    tmp_path, data_dir, capsys
):
    run = train_small_run(tmp_path / "run", data_dir, head="fc", steps=2)
    resume = ["train", "--resume", str(run), "--data-dir", str(data_dir)]
    capsys.readouterr()
    refused = [
        (["--no-augment"], "--no-augment: the run in"),
        (["--max-angle", "10"], "--max-angle 10.0: the run in"),
        (["--preset", "paper"], "--preset paper: the run in"),
        (["--head", "scoremap"], "--head scoremap: the run in"),
        (["--out", str(tmp_path / "elsewhere")], "a resumed run stays in"),
    ]
    for extra, message in refused:
        assert main([*resume, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert main([*resume, "--preset", "quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "hjr_fc" in out and "dry run" in out and "already trained" not in out
    assert main([*resume, "--steps", "4", "--jit", "off", "--out", str(run)]) == 0
    assert load_config(run)["steps"] == 4 and load_config(run)["jit"] == "off"


def test_resume_errors(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["train", "--resume", str(tmp_path / "empty")]) == 2
    assert "not a run folder" in capsys.readouterr().err
