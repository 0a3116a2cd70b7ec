"""A whole `hjr train` run, timed phase by phase, as a user runs it: prepare the
data, train with validation and checkpoints, predict and evaluate; beside it the
loader alone and the training step alone, so that the run's overhead shows.

    python run_scripts/gpu_run.py OUT_DIR [--preset gpu] [--head fc] [--steps N]
        [--backbone B] [--weights W] [--data SOURCE] [--batch-size B]
        [--precision P] [--steps-per-execution N]

Meant for a GPU machine without TensorFlow (KERAS_BACKEND=jax, the default here),
where it needs Keras, JAX, NumPy, h5py, OpenCV, pandas and matplotlib beside hjr;
it runs anywhere hjr does (on 2 CPU cores with a small backbone and few steps). Each
phase is `python -m hjr ...` in a fresh process, its output in OUT_DIR/<phase>.log;
OUT_DIR/gpu_run.json gets, as soon as each phase ends:
  phases_s         wall time of each phase (prepare, loader, step, train, predict,
                   evaluate)
  loader           images/s of the loader alone (hjr bench --loader)
  step             the training step alone (hjr bench --train-step): ms, images/s,
                   peak accelerator memory
  train            steps, images/s of the whole training run, and
                   whole_over_steps: its wall time over its steps' time
  validation       the run's best validation metrics (best.json) and hjr
                   evaluate's (with TTA)
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PRESET_BATCH = {"paper": 32, "quick": 16, "gpu": 256}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--preset", default="gpu")
    parser.add_argument("--head", default="fc")
    parser.add_argument("--steps", type=int, help="default: the preset's")
    parser.add_argument("--backbone", help="default: the preset's")
    parser.add_argument("--weights", help="default: the preset's (imagenet)")
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--batch-size", type=int, help="default: the preset's")
    parser.add_argument("--precision", help="default: the preset's")
    parser.add_argument("--steps-per-execution", type=int, help="default: preset's")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ["HJR_DATA_DIR"] = str(args.out / "data")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hjr.config import configure

    given = {"head": args.head, "data": args.data}
    keys = ("steps", "backbone", "weights", "batch_size", "precision")
    for key in (*keys, "steps_per_execution"):
        if getattr(args, key) is not None:
            given[key] = getattr(args, key)
    conf = configure(args.preset, given)
    run_dir = args.out / "run"
    report = {
        "settings": {k: conf[k] for k in (*given, "steps", "batch_size", "precision")},
        "preset": args.preset,
        "backend": os.environ["KERAS_BACKEND"],
        "phases_s": {},
    }
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in given.items()]
    batch = ["--batch-size", str(conf["batch_size"])]

    def phase(name, *hjr_args, json_out=None):
        started = time.monotonic()
        with open(args.out / f"{name}.log", "w") as log:
            done = subprocess.run(
                [sys.executable, "-m", "hjr", *hjr_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ,
            )
        report["phases_s"][name] = round(time.monotonic() - started, 1)
        if done.returncode:
            report["failed"] = f"{name}: see {args.out / (name + '.log')}"
        _write(args.out, report)
        if done.returncode:
            raise SystemExit(f"gpu_run: {report['failed']}")
        return json.loads(Path(json_out).read_text()) if json_out else None

    phase("prepare", "prepare", "--data", args.data)
    loader = phase(
        "loader",
        *("bench", "--loader", "--data", args.data, *batch, "--timed-steps", "50"),
        *("--json", str(args.out / "loader.json")),
        json_out=args.out / "loader.json",
    )
    report["loader"] = loader["loader"]
    step = phase(
        "step",
        *("bench", "--train-step", "--heads", args.head, *batch),
        *("--backbone", conf["backbone"], "--precision", conf["precision"]),
        *("--steps-per-execution", str(conf["steps_per_execution"])),
        *("--timed-steps", str(4 * conf["steps_per_execution"])),
        *("--json", str(args.out / "step.json")),
        json_out=args.out / "step.json",
    )
    report["step"] = step["train_step"][args.head]
    # The script starts over in OUT: a run an earlier call left there goes.
    train = ("train", "--preset", args.preset, *flags, "--out", str(run_dir))
    phase("train", *train, "--overwrite")
    images = conf["steps"] * conf["batch_size"]
    steps_s = conf["steps"] * report["step"]["ms_per_step"] / 1000
    report["train"] = {
        "steps": conf["steps"],
        "images": images,
        "images_per_s": round(images / report["phases_s"]["train"], 1),
        "steps_s": round(steps_s, 1),
        "whole_over_steps": round(report["phases_s"]["train"] / steps_s, 3),
    }
    report["loader"]["over_step_images_per_s"] = round(
        report["loader"]["images_per_s"] / report["step"]["images_per_s"], 2
    )
    report["validation"] = {"best": json.loads((run_dir / "best.json").read_text())}
    _write(args.out, report)
    phase(
        "predict",
        "predict",
        "--model",
        str(run_dir),
        "--data",
        args.data,
        "--out",
        str(args.out / "submission.csv"),
    )
    metrics = phase(
        "evaluate",
        *("evaluate", "--model", str(run_dir), "--data", args.data),
        *("--split", "validation", "--json", str(args.out / "metrics.json")),
        json_out=args.out / "metrics.json",
    )
    report["validation"]["evaluate_tta"] = {
        k: metrics[k]
        for k in ("kaggle_mse", "epe", "pck@0.2", "mean_predictor_kaggle_mse")
    }
    _write(args.out, report)
    print(json.dumps(report, indent=2))
    return 0


def _write(out: Path, report: dict):
    tmp = out / "gpu_run.json.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out / "gpu_run.json")


if __name__ == "__main__":
    sys.exit(main())
