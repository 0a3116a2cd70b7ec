"""`hjr reproduce --robustness`: the report's open question, which head survives an
imperfect crop.

Sarlin & Zimmermann (2018) found the fc head best on the competition's crops, all cut
the same biased way, and asked whether the fully-convolutional heads would do better
where the hand cannot be cropped exactly. This trains every head on a source with
its preset's settings, as it is and with --box-jitter (boxes moved and scaled during
training, data_pipeline.boxes), each with the training seeds 0 .. seeds - 1 (the
run's `seed`: weights, data order, augmentation and box-jitter draws), and scores
each run's best checkpoint on the validation split cut from boxes moved by each of
SHIFTS pixels (of the 128-px crop) and scaled by a factor in [1/S, S] for each S of
SCALES (seeded: every run sees the same boxes; every column, 0 px included, cut
once from the frame's pixels). The error is `hjr evaluate`'s mean joint error
(hjr.inference.evaluate.evaluate_split, without TTA): in pixels of the crop as it
should have been cut. The table and the chart give each figure's mean over the
seeds +/- half their range (SPREAD).

On the synthetic hands it also tracks: each run follows drawn hands (of the synthetic
test frames, never trained on) moving and turning through videos
(data_pipeline.video.synthetic_video, VIDEO), with the true box in every frame and
tracked from the first frame's (hjr.inference.track.video_errors); tracking is where
imperfect crops happen all the time. One folder:

    runs/<head>-<plain|jitter>-seed<k>/   the training runs (hjr.training.train)
    videos/hand-<n>.mp4   the videos tracked
    robustness.json    the source, preset, steps, box jitter and seeds, and each
                       finished run's errors per shift and scale
    robustness.md      the table
    robustness.png     error against shift, one line per head and training

Runs are saved as they finish; again in the same folder, finished runs are skipped
and an interrupted one continues from its last checkpoint. A folder of an earlier
hjr (one seed a run, in runs/<head>-<plain|jitter>/) is refused
(hjr.apps.folders.check_table).
"""

import time
from pathlib import Path

import numpy as np

from data_pipeline import boxes
from data_pipeline.errors import UserError
from data_pipeline.examples import TEST_INDEX_OFFSET
from data_pipeline.files import atomic_path, write_json, write_png
from data_pipeline.sources import parse_source
from hjr import runs
from hjr.apps.folders import ROBUSTNESS as RESULTS
from hjr.apps.folders import check_table
from hjr.apps.reproduce import _without_retracing_warnings
from hjr.config import DEFAULT_PRESET, configure
from hjr.core.heads import HEADS
from hjr.draw import figure_image, new_figure
from hjr.inference.evaluate import evaluate_split
from hjr.inference.predictors import load_predictor
from hjr.training.train import run_or_continue

SHIFTS = (0, 4, 8, 16, 32)  # pixels of the 128-px crop
SCALES = (1.0, 1.25)
BOX_SEED = 0
DEFAULT_JITTER = [32.0, 1.25]  # the largest shift and scale scored
TRAININGS = ("plain", "jitter")
SEEDS = 2  # training seeds 0 .. SEEDS - 1 per head and training
# With two seeds the mean +/- half the range spans both figures; a standard
# deviation of two would claim more than they show.
SPREAD = "half the range over the seeds"
# The tracking videos: hands of the synthetic test frames (never trained on).
VIDEO = {"hands": [TEST_INDEX_OFFSET + n for n in (1, 2, 3)], "frames": 300}


def robustness(
    out="robustness",
    data="synthetic",
    preset=None,
    steps=None,
    data_dir=None,
    heads=None,
    jitter=None,
    seeds=None,
) -> list:
    """Train and score every head with and without box jitter, `seeds` training
    seeds each (the table's in `out`, else SEEDS), into `out`; returns the rows
    that robustness.md shows (summary)."""
    out = Path(out)
    heads = list(HEADS) if heads is None else list(heads)
    if not heads or any(h not in HEADS for h in heads):
        raise UserError(f"expected some of {', '.join(HEADS)}", "heads", heads)
    table = _open_table(out, data, preset, steps, jitter, seeds)
    source = parse_source(table["data"])
    videos = _videos(out) if source.kind == "synthetic" else []
    todo = [
        (head, kind, seed)
        for head in heads
        for kind in TRAININGS
        for seed in range(table["seeds"])
    ]
    with _without_retracing_warnings():
        for number, (head, kind, seed) in enumerate(todo, 1):
            name = f"{head}-{kind}-seed{seed}"
            prefix = f"hjr reproduce --robustness: [{number}/{len(todo)}] {name}"
            if name in table["rows"]:
                row = table["rows"][name]
                if videos and "video" not in row:  # a table begun without it
                    predictor = load_predictor(out / row["run"])
                    row["video"] = _track(predictor, out / row["run"], videos, data_dir)
                    write_json(out / RESULTS, table)
                print(f"{prefix}: done before")
                continue
            started = time.monotonic()
            run_dir = out / "runs" / name
            print(f"{prefix}: training {run_dir}")
            _train(run_dir, head, kind, seed, table, data_dir)
            trained = time.monotonic() - started
            print(f"{prefix}: scoring on moved and scaled boxes")
            predictor = load_predictor(run_dir)
            errors = _score(predictor, source, data_dir)
            if videos:
                print(f"{prefix}: tracking {len(videos)} videos")
            video = _track(predictor, run_dir, videos, data_dir) if videos else None
            table["rows"][name] = {
                "head": head,
                "training": kind,
                "seed": seed,
                "run": str(Path("runs") / name),
                "errors": errors,
                **({"video": video} if video else {}),
                "train_seconds": trained,
                "seconds": time.monotonic() - started,
            }
            write_json(out / RESULTS, table)
            print(f"{prefix}: {_summary(errors)}")
    rows = summary(table)
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


def _open_table(out, data, preset, steps, jitter, seeds) -> dict:
    """The table in `out`, or a new one saved there; UserError (naming the
    setting) where a given setting differs from the table's."""
    given = dict(data=data, preset=preset, steps=steps, box_jitter=jitter)
    table = check_table(out, robustness=True, seeds=seeds, **given)
    if table is not None:
        return table
    if seeds is not None and seeds < 1:
        raise UserError("expected a whole number of at least 1", "seeds", seeds)
    table = {
        "data": data or "synthetic",
        "preset": preset or DEFAULT_PRESET,
        "steps": steps,
        "box_jitter": list(jitter or DEFAULT_JITTER),
        "seeds": seeds or SEEDS,
        "spread": SPREAD,
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
    write_json(out / RESULTS, table)
    return table


def _train(run_dir, head, kind, seed, table, data_dir):
    """Train a run, or continue it from its latest checkpoint."""
    overrides = {"head": head, "data": table["data"], "seed": seed}
    if kind == "jitter":
        overrides["box_jitter"] = table["box_jitter"]
    if table["steps"] is not None:
        overrides["steps"] = table["steps"]
    run_or_continue(run_dir, table["preset"], overrides, data_dir)


def _score(predictor, source, data_dir) -> dict:
    """{"<scale>": {"<shift>": mean joint error, px of the crop as it should have
    been cut}} on the validation split, without TTA: `hjr evaluate --no-tta
    --shift --scale`'s `epe`."""
    errors = {}
    for scale in SCALES:
        errors[f"{scale:g}"] = {}
        for shift in SHIFTS:
            result, _ = evaluate_split(
                source,
                "validation",
                predictor,
                tta=False,
                data_dir=data_dir,
                box=(shift, scale, BOX_SEED),
            )
            errors[f"{scale:g}"][str(shift)] = result["epe"]
    return errors


def _videos(out) -> list:
    """[(path, keypoints [T, 21, 2])] of the tracking videos (VIDEO), written into
    out/videos (again each time: they are drawn, not stored)."""
    from data_pipeline.video import synthetic_video

    folder = Path(out) / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for n, hand in enumerate(VIDEO["hands"]):
        path = folder / f"hand-{n}.mp4"
        truth = synthetic_video(path, count=VIDEO["frames"], hand=hand)
        made.append((path, truth["keypoints"]))
    return made


def _track(predictor, run_dir, videos, data_dir) -> dict:
    """The run's errors (frame pixels) over the videos: with true boxes, tracked,
    and the frames it lost (hjr.inference.track.video_errors)."""
    from hjr.inference.track import model_crop_rule, video_errors

    rule = model_crop_rule(run_dir, data_dir, predictor)
    found = [video_errors(predictor, path, truth, rule) for path, truth in videos]
    frames = sum(f["frames"] for f in found)
    return {
        "true_box": float(sum(f["true_box"] * f["frames"] for f in found) / frames),
        "tracked": float(sum(f["tracked"] * f["frames"] for f in found) / frames),
        "lost": int(sum(f["lost"] for f in found)),
        "frames": int(frames),
    }


def summary(table) -> list:
    """One row per head and training with finished runs, in HEADS' order:
    {head, training, seeds: [the finished ones], runs, seconds, mean and spread:
    {"<scale>": {"<shift>": px}}}, the spread SPREAD."""
    rows = []
    for head in HEADS:
        for kind in TRAININGS:
            done = [
                r
                for r in table["rows"].values()
                if r["head"] == head and r["training"] == kind
            ]
            if not done:
                continue
            done.sort(key=lambda r: r["seed"])
            mean, spread = {}, {}
            for scale, values in done[0]["errors"].items():
                figures = {
                    shift: [r["errors"][scale][shift] for r in done] for shift in values
                }
                mean[scale] = {k: float(np.mean(v)) for k, v in figures.items()}
                spread[scale] = {k: float(np.ptp(v)) / 2 for k, v in figures.items()}
            tracked = [r["video"] for r in done if "video" in r]
            if tracked and len(tracked) == len(done):
                keys = ("true_box", "tracked", "lost")
                figures = {k: [v[k] for v in tracked] for k in keys}
                mean["video"] = {k: float(np.mean(v)) for k, v in figures.items()}
                spread["video"] = {k: float(np.ptp(v)) / 2 for k, v in figures.items()}
            rows.append(
                {
                    "head": head,
                    "training": kind,
                    "seeds": [r["seed"] for r in done],
                    "runs": [r["run"] for r in done],
                    "seconds": sum(r["seconds"] for r in done),
                    "mean": mean,
                    "spread": spread,
                }
            )
    return rows


def _summary(errors) -> str:
    return "; ".join(
        f"scale {scale}: " + ", ".join(f"{v:.1f}" for v in values.values()) + " px"
        for scale, values in errors.items()
    )


def markdown(table, rows, out) -> str:
    """robustness.md: a header and one line per head and training of `rows`
    (summary; runs in folder `out`), each figure its mean +/- spread over the
    finished seeds."""
    minutes = sum(r["seconds"] for r in rows) / 60
    confs = {r["head"]: runs.load_config(Path(out) / r["runs"][0]) for r in rows}
    networks = ", ".join(
        f"{head} {conf['backbone']} ({conf['steps']:,} steps)"
        for head, conf in confs.items()
    )
    shift_px, scale = table["box_jitter"]
    seeds = ", ".join(str(seed) for seed in range(table["seeds"]))
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
        f"Each run trained with the seeds {seeds} (`--seed`: weights, data order, "
        "augmentation and box-jitter draws); each figure is the mean over the "
        f"seeds ± {SPREAD} (column `seeds`: how many have finished).",
        "",
    ]
    header = "| head | training | seeds |"
    rule = "|---|---|---:|"
    for scale_key in (f"{s:g}" for s in SCALES):
        for shift in SHIFTS:
            header += f" {shift} px, ×{scale_key} |"
            rule += "---:|"
    lines += [header, rule]
    for r in rows:
        trained = "box jitter" if r["training"] == "jitter" else "as is"
        line = f"| {r['head']} | {trained} | {len(r['seeds'])} |"
        for scale_key in (f"{s:g}" for s in SCALES):
            for shift in SHIFTS:
                mean = r["mean"][scale_key][str(shift)]
                spread = r["spread"][scale_key][str(shift)]
                many = len(r["seeds"]) > 1
                line += f" {mean:.2f} ± {spread:.2f} |" if many else f" {mean:.2f} |"
        lines.append(line)
    tracked = [r for r in rows if "video" in r["mean"]]
    if tracked:
        frames = VIDEO["frames"] * len(VIDEO["hands"])
        lines += [
            "",
            "## Tracking a hand through a video",
            "",
            f"Mean joint error (px of the 320-px frames; no TTA) over {frames} frames: "
            f"{len(VIDEO['hands'])} drawn hands of the synthetic test frames, never "
            f"trained on, each moving and turning through {VIDEO['frames']} frames "
            "(`videos/`). True box: each frame cut about its true joints by the "
            "rule of the training crops; tracked: from the first frame's true box, "
            "each next crop cut about the joints found in the frame before "
            "(`hjr predict --data video:FILE,box=...`); lost: frames whose mean "
            "joint score fell under the threshold (the next one starts again from "
            "the given box).",
            "",
            "| head | training | seeds | true box | tracked | lost frames |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in tracked:
            trained = "box jitter" if r["training"] == "jitter" else "as is"
            line = f"| {r['head']} | {trained} | {len(r['seeds'])} |"
            for key in ("true_box", "tracked", "lost"):
                mean, spread = r["mean"]["video"][key], r["spread"]["video"][key]
                digits = 1 if key == "lost" else 2
                line += f" {mean:.{digits}f}"
                line += f" ± {spread:.{digits}f} |" if len(r["seeds"]) > 1 else " |"
            lines.append(line)
    return "\n".join(lines) + "\n"


def plot(path, rows, table):
    """PNG: mean joint error against shift, a panel per scale, one line per head
    (solid: trained as is; dashed: with box jitter) of `rows` (summary), the
    seeds' mean with bars of the spread."""
    fig, axes = new_figure(figsize=(11, 4.5), dpi=100, ncols=len(SCALES))
    colours = dict(zip(HEADS, ("tab:red", "tab:blue", "tab:green", "tab:purple")))
    top = max(
        r["mean"][f"{scale:g}"][str(shift)] + r["spread"][f"{scale:g}"][str(shift)]
        for r in rows
        for scale in SCALES
        for shift in SHIFTS
    )
    for ax, scale in zip(axes, SCALES):
        for r in rows:
            values = [r["mean"][f"{scale:g}"][str(s)] for s in SHIFTS]
            spread = [r["spread"][f"{scale:g}"][str(s)] for s in SHIFTS]
            jitter = r["training"] == "jitter"
            ax.errorbar(
                SHIFTS,
                values,
                yerr=spread,
                capsize=3,
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
    axes[0].legend(
        loc="upper left", ncol=2, fontsize=8, title=f"bars: {SPREAD}", title_fontsize=8
    )
    where = f"{table['data']}, {table['preset']} preset"
    fig.suptitle(f"Which head survives an imperfect crop ({where})")
    return write_png(path, figure_image(fig))
