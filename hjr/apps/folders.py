"""The folders of `hjr demo`, `hjr reproduce` and `hjr reproduce --robustness`:
what a later call in the same folder must keep (the demo's run, each table's
settings), checked without Keras, so that the CLI refuses another setting before
TensorFlow starts."""

import json
from pathlib import Path

from data_pipeline.errors import UserError
from hjr import runs

DEMO_PRESET = "quick"
# The head that learned the synthetic hands best on the quick preset (README,
# "Reproduce the paper's tables": lowest mean joint error).
DEMO_HEAD = "offsets"

REPRODUCE = "results.json"  # hjr.apps.reproduce's table
ROBUSTNESS = "robustness.json"  # hjr.apps.robustness's table


def saved_table(path, given: dict, what: str = "reproduce"):
    """The table saved at `path`, None where there is none; UserError (naming the
    setting) where a setting of `given` that is not None differs from the
    table's (a table's steps None: its preset's steps for each head)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        table = json.loads(path.read_text())
        refused = [k for k, v in given.items() if v is not None and v != table[k]]
        has = {k: f"{k} {table[k]!r}" for k in given}
        if table.get("steps", 0) is None:
            has["steps"] = "its preset's steps for each head"
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path}: not an hjr {what} table ({error})") from None
    if refused:
        key = refused[0]
        raise UserError(
            f"the table in {path.parent} has {has[key]}: finish it with those, "
            "or start another table in a new folder",
            key,
            given[key],
        )
    return table


def check_table(out, robustness=False, **given):
    """The table already in folder `out` (reproduce's, or with `robustness` the
    robustness table), None where there is none; UserError where it has other
    settings than those `given`. A robustness table without `seeds`, an earlier
    hjr's (one seed a run, in runs/<head>-<plain|jitter>/, its moved crops cut
    from resampled surroundings), is refused: its figures are not these."""
    if not robustness:
        return saved_table(Path(out) / REPRODUCE, given, "reproduce")
    path = Path(out) / ROBUSTNESS
    table = saved_table(path, {}, "robustness")
    if table is not None and "seeds" not in table:
        raise UserError(
            f"{path}: a robustness table of an earlier hjr (one seed a run, moved "
            "crops cut twice over), not comparable: start the table in a new folder"
        )
    return saved_table(path, given, "robustness")


def demo_config(out, data="synthetic", head=DEMO_HEAD, steps=None, crop="biased"):
    """(configuration, resume) of `hjr demo`'s run in `out`/run: the run found there,
    resumed (to `steps` where given; any other setting that differs is refused,
    as hjr.config's resume rules say), else a new run of the quick preset."""
    run_dir = Path(out) / "run"
    overrides = {"head": head, "data": data, "crop": crop}
    if steps is not None:
        overrides["steps"] = steps
    resume = runs.is_run(run_dir)
    return runs.run_config(run_dir, DEMO_PRESET, overrides, resume), resume
