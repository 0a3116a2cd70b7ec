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
    parser.add_argument("--head", default="fc", help="fc, classification or scoremap")
    parser.add_argument("--steps", help="training steps (default: the preset's)")
    parser.add_argument("--batch-size", help="global batch (default: the preset's)")
    parser.add_argument("--weights", help="imagenet, none or a weights file")
    parser.add_argument(
        "--validation", help="training samples held out for validation (default 480)"
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
    """hjr.cli.main, from an installed hjr, this repository, or a dataset under root."""
    here = Path(__file__).resolve().parents[1] if "__file__" in globals() else None
    candidates = [here] if here else []
    candidates += sorted(p.parents[1] for p in root.glob("**/hjr/__init__.py"))
    for folder in candidates:
        if (folder / "hjr").is_dir() and (folder / "data_pipeline").is_dir():
            sys.path.insert(0, str(folder))
            break
    try:
        from hjr.cli import main
    except ImportError as error:
        raise SystemExit(
            f"kaggle_kernel: error: cannot import hjr ({error}); add the hjr "
            "source as a Kaggle dataset (see README, 'Kaggle kernel')"
        ) from None
    return main


def run(argv=None) -> int:
    args = parse_args(argv)
    main = import_hjr(args.input)
    data = find_competition_data(args.input, args.data_dir / "competition_files")
    args.output.mkdir(parents=True, exist_ok=True)
    run_dir = args.output / "run"
    spec = f"{data}:validation={args.validation}" if args.validation else str(data)
    common = ["--data", spec, "--data-dir", str(args.data_dir)]
    print(f"kaggle_kernel: competition files in {data}, outputs in {args.output}")
    if (run_dir / "config.json").exists():
        train = ["train", "--resume", str(run_dir)]
        train += ["--steps", args.steps] if args.steps else []
    else:
        train = ["train", "--preset", args.preset, "--head", args.head]
        train += ["--out", str(run_dir), *common]
        for flag in ("steps", "batch_size", "weights"):
            if getattr(args, flag):
                train += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    status = main(train)
    if status:
        return status
    return main(
        [
            "predict",
            "--model",
            str(run_dir),
            *common,
            "--split",
            "test",
            "--out",
            str(args.output / "submission.csv"),
        ]
    )


if __name__ == "__main__":
    sys.exit(run())
