"""hjr as a Kaggle kernel: train on the competition's files, write submission.csv.

On Kaggle (see kernel-metadata.json beside this file; push with
`kaggle kernels push -p run_scripts`), it finds `training.h5` and `testing.h5`
anywhere under /kaggle/input, trains with `hjr train` (the preset of --preset; TPU
or GPUs are used when the kernel has them) and writes /kaggle/working/submission.csv
with `hjr predict` (4-rotation TTA). The hjr source comes from the repository this
file sits in, else from a Kaggle dataset holding it (any folder under /kaggle/input
with hjr/ and data_pipeline/).

Off Kaggle, --input and --output replace both roots:

    python run_scripts/kaggle_kernel.py --input DIR --output DIR [--preset quick]

A second run with the same --output continues the training run it finds there.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")
FILES = ("training.h5", "testing.h5")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=KAGGLE_INPUT, help="input root")
    parser.add_argument("--output", type=Path, default=KAGGLE_WORKING, help="outputs")
    parser.add_argument("--preset", default="paper", help="paper (default) or quick")
    parser.add_argument(
        "--head", default="fc", help="fc (default), classification, scoremap or offsets"
    )
    parser.add_argument("--steps", type=int, help="training steps (default: preset's)")
    parser.add_argument("--batch-size", type=int, help="global batch (preset's)")
    parser.add_argument("--weights", help="imagenet, none or a weights file")
    parser.add_argument(
        "--validation",
        type=int,
        help="training samples held out for validation (default 480)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "hjr_datasets",
        help="where the prepared data goes (default: a temporary folder, not output)",
    )
    return parser.parse_args(argv)


def _find(root: Path, name: str):
    """The first `name` under root (sorted walk), or None."""
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        if name in files:
            return Path(folder) / name
    return None


def find_competition_data(root: Path, scratch: Path) -> Path:
    """A folder with training.h5 and testing.h5 found under root; linked together
    into scratch when they sit in different folders."""
    found = {name: _find(root, name) for name in FILES}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise SystemExit(
            f"kaggle_kernel: error: --input {root}: no {' or '.join(missing)} under it"
        )
    folders = {path.parent for path in found.values()}
    if len(folders) == 1:
        return folders.pop()
    scratch.mkdir(parents=True, exist_ok=True)
    for name, path in found.items():
        link = scratch / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path.resolve())
    return scratch


def import_hjr(root: Path):
    """hjr's Python API (hjr.cli, hjr.training.train, hjr.inference.predict), from
    an installed hjr, this repository, or a dataset under root."""
    here = Path(__file__).resolve().parents[1] if "__file__" in globals() else None
    candidates = [here] if here else []
    candidates += sorted(p.parents[1] for p in root.glob("**/hjr/__init__.py"))
    for folder in candidates:
        if (folder / "hjr").is_dir() and (folder / "data_pipeline").is_dir():
            sys.path.insert(0, str(folder))
            break
    try:
        from hjr import quiet

        quiet.start_tensorflow(quiet.verbose_from_env())
        import hjr.cli
        import hjr.inference.predict
        import hjr.runs
        import hjr.training.train
    except ImportError as error:
        raise SystemExit(
            f"kaggle_kernel: error: cannot import hjr ({error}); add the hjr "
            "source as a Kaggle dataset (see README, 'Kaggle kernel')"
        ) from None
    return hjr


def run(argv=None) -> int:
    args = parse_args(argv)
    hjr = import_hjr(args.input)
    from data_pipeline.errors import UserError
    from data_pipeline.sources import parse_source

    data = find_competition_data(args.input, args.data_dir / "competition_files")
    args.output.mkdir(parents=True, exist_ok=True)
    run_dir = args.output / "run"
    spec = f"{data}:validation={args.validation}" if args.validation else str(data)
    print(f"kaggle_kernel: competition files in {data}, outputs in {args.output}")
    resume = hjr.runs.is_run(run_dir)
    if resume:  # the run found there, continued (to --steps where given)
        preset, overrides = None, {"steps": args.steps}
    else:
        preset = args.preset
        overrides = dict(
            head=args.head, data=spec, steps=args.steps, batch_size=args.batch_size
        )
        overrides["weights"] = args.weights
    overrides = {k: v for k, v in overrides.items() if v is not None}
    out = args.output / "submission.csv"
    try:
        hjr.training.train.run(run_dir, preset, overrides, resume, args.data_dir)
        hjr.inference.predict.predict(
            run_dir, parse_source(spec), "test", out=out, data_dir=args.data_dir
        )
    except UserError as error:
        print(f"kaggle_kernel: error: {hjr.cli.flag_line(error)}", file=sys.stderr)
        return 2
    print(f"kaggle_kernel: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
