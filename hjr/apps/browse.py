"""`hjr browse`: write what the network sees, sample by sample."""

from pathlib import Path

import numpy as np
from keras import ops

from data_pipeline.files import write_png
from data_pipeline.kaggle_csv import write_keypoints_csv
from data_pipeline.loader import batch_draws, eval_batches
from data_pipeline.sources import Source
from data_pipeline.store import open_split
from hjr.core.augment import augment_batch
from hjr.draw import contact_sheet, draw_keypoints

GRID_MAX = 64  # samples shown in grid.png


def browse(
    source: Source,
    split: str,
    out: Path,
    num: int = 16,
    seed: int = 0,
    augmented: bool = False,
    crop: str = "biased",
    data_dir=None,
    augment_conf: dict = None,
    box: tuple = None,
) -> Path:
    """Write the first `num` samples of a split into `out`:
    <id>.png (the 128x128 network input, nothing drawn), <id>_overlay.png (joints
    and bones), keypoints.csv (labels in the submission format; labelled splits
    only) and grid.png. With `augmented`, the training augmentation (hjr.core.augment)
    with the draws of `seed` (batch b uses batch_draws(seed, b, its size), as
    training batch b of a run seeded `seed` would). With `box` (shift, scale,
    seed), the crops cut from moved and scaled boxes (data_pipeline.boxes).
    Returns `out`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prepared = open_split(source, split, crop, data_dir, box=box)
    labelled, count = prepared.labelled, len(prepared)
    batch_size = max(1, min(num, 32))
    ids, keypoints, overlays = [], [], []
    for b, batch in enumerate(eval_batches(prepared, batch_size)):
        if len(ids) == num:
            break
        images, points = batch["image"], batch["keypoints"]
        if augmented:
            draws = batch_draws(seed, b, len(images))
            images, points = augment_batch(images, points, draws, augment_conf)
            images, points = ops.convert_to_numpy(images), ops.convert_to_numpy(points)
        images = np.round(images).clip(0, 255).astype(np.uint8)
        for image, kp, index in zip(images, points, batch["id"]):
            if len(ids) == num:
                break
            name = f"{index:05d}"
            write_png(out / f"{name}.png", image)
            overlay = draw_keypoints(image, kp if labelled else None)
            write_png(out / f"{name}_overlay.png", overlay)
            ids.append(int(index))
            keypoints.append(kp)
            if len(overlays) < GRID_MAX:
                overlays.append(overlay)
    if labelled:
        write_keypoints_csv(out / "keypoints.csv", ids, keypoints)
    write_png(out / "grid.png", contact_sheet(overlays, [f"{i:05d}" for i in ids]))
    print(f"hjr: wrote {len(ids)} of {count} {split} samples of {source} to {out}")
    return out
