"""`hjr reproduce --robustness`: the report's open question, which head survives an
imperfect crop.

Sarlin & Zimmermann (2018) found the fc head best on the competition's crops, all cut
the same biased way, and asked whether the fully-convolutional heads would do better
where the hand cannot be cropped exactly. This trains every head twice on a source,
with its preset's settings: as it is and with --box-jitter (boxes moved and scaled
during training, data_pipeline.boxes), and scores each run's best checkpoint on the
validation split cut from boxes moved by each of SHIFTS pixels (of the 128-px crop)
and scaled by a factor in [1/S, S] for each S of SCALES (seeded: every run sees the
same boxes). The error is the mean joint distance in pixels of the crop as it should
have been cut (a moved crop's errors times its scale factor), without TTA. One
folder:

    runs/<head>-<plain|jitter>/   the training runs (hjr.training.train)
    robustness.json    the source, preset, steps and box jitter, and each finished run's
                       errors per shift and scale
    robustness.md      the table
    robustness.png     error against shift, one line per head and training

Runs are saved as they finish; again in the same folder, finished runs are skipped
and an interrupted one continues from its last checkpoint.
"""

import time
from pathlib import Path

import keras
import numpy as np

from data_pipeline import boxes
from data_pipeline.errors import UserError
from data_pipeline.files import atomic_path, write_json, write_png
from data_pipeline.keypoints import labelled_joints
from data_pipeline.sources import parse_source
from data_pipeline.store import open_split
from hjr import runs
from hjr.apps.folders import ROBUSTNESS as RESULTS
from hjr.apps.folders import saved_table
from hjr.apps.reproduce import _without_retracing_warnings
from hjr.config import DEFAULT_PRESET, configure
from hjr.core.heads import HEADS
from hjr.draw import figure_image, new_figure
from hjr.inference.predict import predict_split
from hjr.inference.predictors import load_predictor
from hjr.training.train import run

SHIFTS = (0, 4, 8, 16, 32)  # pixels of the 128-px crop
SCALES = (1.0, 1.25)
BOX_SEED = 0
DEFAULT_JITTER = [32.0, 1.25]  # the largest shift and scale scored
TRAININGS = ("plain", "jitter")


def robustness(
    out="robustness",
    data="synthetic",
    preset=None,
    steps=None,
    data_dir=None,
    heads=None,
    jitter=None,
) -> list:
    """Train and score every head with and without box jitter into `out`; returns
    the finished runs' rows (dicts), which robustness.md shows."""
    out = Path(out)
    heads = list(HEADS) if heads is None else list(heads)
    if not heads or any(h not in HEADS for h in heads):
        raise UserError(f"expected some of {', '.join(HEADS)}", "heads", heads)
    table = _open_table(out, data, preset, steps, jitter)
    source = parse_source(table["data"])
    todo = [(head, kind) for head in heads for kind in TRAININGS]
    with _without_retracing_warnings():
        for number, (head, kind) in enumerate(todo, 1):
            name = f"{head}-{kind}"
            prefix = f"hjr reproduce --robustness: [{number}/{len(todo)}] {name}"
            if name in table["rows"]:
                print(f"{prefix}: done before")
                continue
            started = time.monotonic()
            run_dir = out / "runs" / name
            print(f"{prefix}: training {run_dir}")
            _train(run_dir, head, kind, table, data_dir)
            trained = time.monotonic() - started
            print(f"{prefix}: scoring on moved and scaled boxes")
            errors = _score(load_predictor(run_dir), source, data_dir)
            table["rows"][name] = {
                "head": head,
                "training": kind,
                "run": str(Path("runs") / name),
                "errors": errors,
                "train_seconds": trained,
                "seconds": time.monotonic() - started,
            }
            write_json(out / RESULTS, table)
            print(f"{prefix}: {_summary(errors)}")
    rows = [table["rows"].get(f"{h}-{k}") for h in HEADS for k in TRAININGS]
    rows = [row for row in rows if row is not None]
    text = markdown(table, rows, out)
    with atomic_path(out / "robustness.md") as tmp:
        tmp.write_text(text)
    plot(out / "robustness.png", rows, table)
    print(text)
    print(
        f"hjr reproduce --robustness: wrote {out / 'robustness.md'}, "
        f"{out / 'robustness.png'} and {out / RESULTS}; the runs are in {out / 'runs'}/"
    )
    return rows


def _open_table(out, data, preset, steps, jitter) -> dict:
    """The table in `out`, or a new one saved there; UserError (naming the
    setting) where a given setting differs from the table's."""
    path = out / RESULTS
    given = {"data": data, "preset": preset, "steps": steps, "box_jitter": jitter}
    table = saved_table(path, given, "robustness")
    if table is not None:
        return table
    table = {
        "data": data or "synthetic",
        "preset": preset or DEFAULT_PRESET,
        "steps": steps,
        "box_jitter": list(jitter or DEFAULT_JITTER),
        "shifts": list(SHIFTS),
        "scales": list(SCALES),
        "rows": {},
    }
    overrides = {"box_jitter": table["box_jitter"]}
    if steps is not None:
        overrides["steps"] = steps
    configure(table["preset"], overrides)  # checked before the folder is made
    for shift in SHIFTS:
        for scale in SCALES:
            boxes.check(shift, scale)
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, table)
    return table


def _train(run_dir, head, kind, table, data_dir):
    """Train a run, or continue it from its latest checkpoint."""
    overrides = {"head": head, "data": table["data"]}
    if kind == "jitter":
        overrides["box_jitter"] = table["box_jitter"]
    if table["steps"] is not None:
        overrides["steps"] = table["steps"]
    resume = runs.checkpoint(run_dir, "latest") is not None
    keras.backend.clear_session()  # the previous runs' models and graphs
    run(run_dir, table["preset"], overrides, resume=resume, data_dir=data_dir)


def _score(predictor, source, data_dir) -> dict:
    """{"<scale>": {"<shift>": mean joint error, px of the crop as it should have
    been cut}} on the validation split, without TTA."""
    errors = {}
    for scale in SCALES:
        errors[f"{scale:g}"] = {}
        for shift in SHIFTS:
            box = (shift, scale, BOX_SEED)
            split = open_split(source, "validation", data_dir=data_dir, box=box)
            ids, predictions, labels = predict_split(predictor, split, tta=False)
            factor = boxes.evaluation_draws(ids, shift, scale, BOX_SEED)[:, 2:]
            distance = np.sqrt(((predictions - labels) ** 2).sum(-1)) * factor
            errors[f"{scale:g}"][str(shift)] = float(
                distance[labelled_joints(labels)].mean()
            )
    return errors


def _summary(errors) -> str:
    return "; ".join(
        f"scale {scale}: " + ", ".join(f"{v:.1f}" for v in values.values()) + " px"
        for scale, values in errors.items()
    )


def markdown(table, rows, out) -> str:
    """robustness.md: a header and one line per finished run (of folder `out`)."""
    minutes = sum(r["seconds"] for r in rows) / 60
    confs = {r["head"]: runs.load_config(Path(out) / r["run"]) for r in rows}
    networks = ", ".join(
        f"{head} {conf['backbone']} ({conf['steps']:,} steps)"
        for head, conf in confs.items()
    )
    shift_px, scale = table["box_jitter"]
    lines = [
        "# Which head survives an imperfect crop",
        "",
        f"Source `{table['data']}`, preset `{table['preset']}` ({networks}); "
        f"wall time {minutes:.1f} min (training and scoring, summed over the runs).",
        "",
        "Mean joint error (px of the crop as it should have been cut; no TTA) on the "
        "validation split cut from boxes moved by the given pixels (of the 128-px "
        "crop) in a seeded direction and, for scale S, scaled by a seeded factor in "
        f"[1/S, S]. Box-jitter training: boxes moved by up to {shift_px:g} px and "
        f"scaled by [1/{scale:g}, {scale:g}] (`--box-jitter {shift_px:g},{scale:g}`).",
        "",
    ]
    header = "| head | training |"
    rule = "|---|---|"
    for scale_key in (f"{s:g}" for s in SCALES):
        for shift in SHIFTS:
            header += f" {shift} px, ×{scale_key} |"
            rule += "---:|"
    lines += [header, rule]
    for r in rows:
        trained = "box jitter" if r["training"] == "jitter" else "as is"
        line = f"| {r['head']} | {trained} |"
        for scale_key in (f"{s:g}" for s in SCALES):
            for shift in SHIFTS:
                line += f" {r['errors'][scale_key][str(shift)]:.2f} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def plot(path, rows, table):
    """PNG: mean joint error against shift, a panel per scale, one line per head
    (solid: trained as is; dashed: with box jitter)."""
    fig, axes = new_figure(figsize=(11, 4.5), dpi=100, ncols=len(SCALES))
    colours = dict(zip(HEADS, ("tab:red", "tab:blue", "tab:green", "tab:purple")))
    top = max(v for r in rows for e in r["errors"].values() for v in e.values())
    for ax, scale in zip(axes, SCALES):
        for r in rows:
            values = [r["errors"][f"{scale:g}"][str(s)] for s in SHIFTS]
            jitter = r["training"] == "jitter"
            ax.plot(
                SHIFTS,
                values,
                marker="o",
                color=colours[r["head"]],
                linestyle="--" if jitter else "-",
                label=f"{r['head']}{', box jitter' if jitter else ''}",
            )
        ax.set_xticks(SHIFTS)
        ax.set_xlabel("box moved by (px of the 128-px crop)")
        scaled = f"box scaled in [1/{scale:g}, {scale:g}]"
        ax.set_title("box size kept" if scale == 1 else scaled)
        ax.set_ylim(0, top * 1.4)  # room for the legend
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean joint error (px)")
    axes[0].legend(loc="upper left", ncol=2, fontsize=8)
    where = f"{table['data']}, {table['preset']} preset"
    fig.suptitle(f"Which head survives an imperfect crop ({where})")
    return write_png(path, figure_image(fig))
