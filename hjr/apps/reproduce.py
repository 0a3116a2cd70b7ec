"""`hjr reproduce`: the paper's ablations on any source, as a table and a chart.

Sarlin & Zimmermann (2018) report the public-leaderboard kaggle_mse of the three
heads and, for the fc head, the steps from a centred crop to the biased crop,
training augmentation and 4-rotation test-time augmentation
(docs/kaggle_format.md). This trains the same configurations on a source (one run
per head, crop and augmentation: TTA is a prediction setting, so two rows share a
run), scores each on the validation split of its own crop and writes one folder:

    runs/<head>-<crop>-<aug|noaug>/   the training runs (hjr.training.train)
    results.json    the source, preset and steps, and each finished row's scores
    reproduce.md    the table, the paper's figures beside ours
    reproduce.png   kaggle_mse per configuration, ours beside the paper's

Rows are saved as they finish. Running it again in the same folder skips the
finished rows and continues an interrupted run from its last checkpoint. A
folder's table has one source, preset and number of steps (or, without --steps,
each head's steps in the preset): others are refused.
"""

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from data_pipeline.errors import UserError
from data_pipeline.files import atomic_path, write_json, write_png
from data_pipeline.loader import read_visibility
from data_pipeline.sources import parse_source
from hjr import runs
from hjr.apps.folders import REPRODUCE as RESULTS
from hjr.apps.folders import saved_table
from hjr.config import DEFAULT_PRESET, configure
from hjr.core.heads import HEADS
from hjr.draw import figure_image, new_figure
from hjr.inference import evaluate
from hjr.inference.predict import predict
from hjr.inference.predictors import load_predictor
from hjr.training.train import run_or_continue

PAPER_HEADS = {"classification": 69.99, "scoremap": 443.42}  # biased, aug, TTA


@dataclass(frozen=True)
class Row:
    """One configuration of the table."""

    head: str
    crop: str
    augment: bool  # training augmentation
    tta: bool  # 4-rotation test-time augmentation
    paper: Optional[float] = None  # the paper's public-leaderboard kaggle_mse

    @property
    def run(self) -> str:
        """The training run's folder name (rows differing in TTA only share it)."""
        return f"{self.head}-{self.crop}-{'aug' if self.augment else 'noaug'}"

    @property
    def name(self) -> str:
        return f"{self.run}-{'tta' if self.tta else 'notta'}"

    @property
    def label(self) -> str:
        augment = "aug" if self.augment else "no-aug"
        return f"{self.head} {self.crop} {augment} {'tta' if self.tta else 'no-tta'}"


def table_rows(heads=None) -> list:
    """The table's configurations in order; only those of `heads` when given.

    The paper's fc ablation, then every other head of hjr.core.heads.HEADS (the
    paper's first) with the biased crop, augmentation and TTA."""
    rows = [
        Row("fc", "centered", False, False, 189.99),
        Row("fc", "biased", False, False, 139.07),
        Row("fc", "biased", True, False, 62.38),
        Row("fc", "biased", True, True, 47.97),
    ]
    others = sorted((h for h in HEADS if h != "fc"), key=lambda h: h not in PAPER_HEADS)
    rows += [Row(h, "biased", True, True, PAPER_HEADS.get(h)) for h in others]
    return [row for row in rows if heads is None or row.head in heads]


def reproduce(
    out="reproduce",
    data="synthetic",
    preset=None,
    steps=None,
    data_dir=None,
    heads=None,
) -> list:
    """Train and score the table's configurations into folder `out`; returns its
    finished rows (dicts, in the table's order), which reproduce.md shows.

    preset, steps: those of the table already in `out`, else the preset (default
    paper) and its steps for each head; others than the table's are refused.
    heads: only the rows of these heads (default all)."""
    out = Path(out)
    source = parse_source(data)
    if heads is not None and (not heads or any(h not in HEADS for h in heads)):
        raise UserError(
            f"expected some of {', '.join(HEADS)}", "heads", ",".join(heads)
        )
    table = _open_table(out, data, preset, steps)
    rows = table_rows(heads)
    trained, loaded = set(), (None, None)
    with _without_retracing_warnings():
        for number, row in enumerate(rows, 1):
            prefix = f"hjr reproduce: [{number}/{len(rows)}] {row.label}"
            if row.name in table["rows"]:
                print(f"{prefix}: done before, {_outcome(table['rows'][row.name])}")
                continue
            started = time.monotonic()
            run_dir = out / "runs" / row.run
            if row.run in trained:
                print(f"{prefix}: evaluating {run_dir}")
            else:
                print(f"{prefix}: training {run_dir}")
                _train(run_dir, row, table, data_dir)
                trained.add(row.run)
            if loaded[0] != row.run:
                loaded = (row.run, load_predictor(run_dir))
            result = _score(row, run_dir, loaded[1], source, data_dir)
            table["rows"][row.name] = dict(result, seconds=time.monotonic() - started)
            _save(out, table)
            print(f"{prefix}: {_outcome(result)}")
    finished = [
        {"name": row.name, "label": row.label, **table["rows"][row.name]}
        for row in table_rows()
        if row.name in table["rows"]
    ]
    text = markdown(table, finished, out)
    with atomic_path(out / "reproduce.md") as tmp:
        tmp.write_text(text)
    plot(out / "reproduce.png", finished, table["data"])
    print(text)
    print(
        f"hjr reproduce: wrote {out / 'reproduce.md'}, {out / 'reproduce.png'} and "
        f"{out / RESULTS}; the runs are in {out / 'runs'}/"
    )
    return finished


def _open_table(out, data, preset, steps) -> dict:
    """The table in `out`, or a new one saved there; UserError (naming the
    setting) where data, preset or steps differ from the table's."""
    given = {"data": data, "preset": preset, "steps": steps}
    table = saved_table(out / RESULTS, given)
    if table is not None:
        return table
    preset = preset or DEFAULT_PRESET
    if steps is not None:
        configure(preset, {"steps": steps})  # checked before the folder is made
    # steps None: each head trains the preset's own steps for it.
    table = {"data": data, "preset": preset, "steps": steps, "rows": {}}
    out.mkdir(parents=True, exist_ok=True)
    _save(out, table)
    return table


def _save(out, table):
    write_json(out / RESULTS, table)


def _train(run_dir, row, table, data_dir):
    """Train the row's run, or continue it from its latest checkpoint; a folder
    without one (a run stopped before it, or another table's leftovers) starts
    anew with this table's settings."""
    overrides = {
        "head": row.head,
        "crop": row.crop,
        "augment": row.augment,
        "data": table["data"],
    }
    if table["steps"] is not None:  # else each head trains its preset's
        overrides["steps"] = table["steps"]
    run_or_continue(run_dir, table["preset"], overrides, data_dir)


def _score(row, run_dir, predictor, source, data_dir) -> dict:
    """The row's results: its scores on the validation split of its crop."""
    ids, predictions, labels = predict(
        predictor, source, "validation", row.tta, crop=row.crop, data_dir=data_dir
    )
    visible = read_visibility(
        source, "validation", ids, crop=row.crop, data_dir=data_dir
    )
    return {
        "head": row.head,
        "crop": row.crop,
        "augment": row.augment,
        "tta": row.tta,
        "run": str(Path("runs") / row.run),
        "paper_kaggle_mse": row.paper,
        **evaluate.scores(predictions, labels, visible),
        "mean_predictor_kaggle_mse": runs.read_baseline(run_dir),
    }


@contextlib.contextmanager
def _without_retracing_warnings():
    """TensorFlow warns of tf.function retracing when it traces the prediction
    step of many networks in one process: here one per run, as intended."""

    def keep(record):
        return "triggered tf.function retracing" not in record.getMessage()

    logger = logging.getLogger("tensorflow")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _outcome(result) -> str:
    paper = result["paper_kaggle_mse"]
    return f"kaggle_mse {result['kaggle_mse']:.1f} (paper {_number(paper)})"


def _number(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown(table, rows, out) -> str:
    """reproduce.md: a header and one table line per finished row. The header's
    backbones, batches and steps are those the runs in `out` were trained with
    (a preset may give heads settings of their own, and change after a run)."""
    minutes = sum(r["seconds"] for r in rows) / 60
    means = {r["crop"]: r["mean_predictor_kaggle_mse"] for r in rows}
    folders = {}  # each head's first row's run
    for r in rows:
        folders.setdefault(r["head"], r["run"])
    confs = [runs.load_config(Path(out) / run) for run in folders.values()]
    backbones = _heads_by(confs, "backbone")
    batches = _and(sorted({str(conf["batch_size"]) for conf in confs}))
    counts = _heads_by(confs, "steps")
    if len(counts) == 1:
        steps = f"{next(iter(counts)):,} steps per run"
    else:
        steps = "steps per run: " + ", ".join(
            f"{count:,} for {_and(heads)}" for count, heads in counts.items()
        )
    if len(backbones) == 1:
        networks = f"{next(iter(backbones))} backbone"
    else:
        networks = "backbone " + ", ".join(
            f"{name} for {_and(heads)}" for name, heads in backbones.items()
        )
    lines = [
        "# The paper's ablations, reproduced",
        "",
        f"Source `{table['data']}`, preset `{table['preset']}` ({networks}; batch "
        f"{batches}), {steps}; "
        f"wall time {minutes:.1f} min (training and evaluation, summed over the "
        "rows).",
        "",
        f"Ours: the validation split ({rows[0]['count']} samples) cut with each "
        "row's own crop, scored with the run's best checkpoint (chosen on that "
        "split). The paper's: the course's public Kaggle leaderboard, whose test "
        "images are cut with the biased crop for every row.",
        "",
        "Always predicting the mean training keypoints: kaggle_mse "
        + ", ".join(f"{v:.1f} ({crop} crop)" for crop, v in means.items())
        + ".",
        "",
        "| # | head | crop | train aug | TTA | kaggle_mse | mean joint error (px) "
        "| visible / hidden joints (px) | PCK@0.2 | paper kaggle_mse |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    numbers = {row.name: n for n, row in enumerate(table_rows(), 1)}
    for r in rows:
        lines.append(
            f"| {numbers[r['name']]} | {r['head']} | {r['crop']} "
            f"| {_yes(r['augment'])} | {_yes(r['tta'])} | {r['kaggle_mse']:.1f} "
            f"| {r['epe']:.2f} | {_apart(r)} | {r['pck@0.2']:.3f} "
            f"| {_number(r['paper_kaggle_mse'])} |"
        )
    return "\n".join(lines) + "\n"


def _heads_by(confs, key) -> dict:
    """{value of `key`: the heads of the confs with it}, in the confs' order."""
    heads = {}
    for conf in confs:
        heads.setdefault(conf[key], []).append(conf["head"])
    return heads


def _and(words) -> str:
    return " and ".join([", ".join(words[:-1]), words[-1]] if words[1:] else words)


def _apart(row) -> str:
    """Mean joint error of the visible and of the hidden joints, where known."""
    if row.get("epe_visible") is None:
        return "–"
    hidden = row.get("epe_hidden")
    hidden = "–" if hidden is None else f"{hidden:.2f}"
    return f"{row['epe_visible']:.2f} / {hidden}"


def _yes(flag) -> str:
    return "yes" if flag else "no"


def plot(path, rows, data):
    """PNG: horizontal bars of kaggle_mse per row (log scale), ours beside the
    paper's, and the mean predictor's as a dashed line."""
    fig, ax = new_figure(figsize=(9, 1.6 + 0.6 * len(rows)), dpi=100)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ours = [(n - 0.2, r["kaggle_mse"], "tab:blue", 1) for n, r in enumerate(rows)]
    paper = [
        (n + 0.2, r["paper_kaggle_mse"], "tab:orange", 2)
        for n, r in enumerate(rows)
        if r["paper_kaggle_mse"] is not None
    ]
    for where, value, colour, digits in ours + paper:
        ax.barh(where, value, 0.4, color=colour)
        ax.text(value * 1.04, where, f"{value:.{digits}f}", va="center", fontsize=8)
    reference = next((r for r in rows if r["crop"] == "biased"), rows[0])
    mean = reference["mean_predictor_kaggle_mse"]
    ax.axvline(mean, color="grey", linestyle="--")
    ax.set_xscale("log")
    values = [value for _, value, _, _ in ours + paper] + [mean]
    ax.set_xlim(min(values) / 1.5, max(values) * 2.5)
    labels = [
        f"{r['head']}, {r['crop']}, {'aug' if r['augment'] else 'no aug'}, "
        f"{'TTA' if r['tta'] else 'no TTA'}"
        for r in rows
    ]
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("kaggle_mse (log scale; lower is better)")
    ax.set_title(f"The paper's ablations on {data}: kaggle_mse")
    ax.legend(
        [
            Patch(color="tab:blue"),
            Patch(color="tab:orange"),
            Line2D([], [], color="grey", linestyle="--"),
        ],
        [
            "ours (validation split)",
            "paper (public leaderboard)",
            f"mean keypoints ({reference['crop']} crop)",
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        fontsize=8,
        ncol=3,
    )
    ax.grid(axis="x", alpha=0.3)
    return write_png(path, figure_image(fig))
