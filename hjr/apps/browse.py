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
    if source.kind == "video":
        return browse_video(source, out, num)
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


def browse_video(source: Source, out: Path, num: int = 16) -> Path:
    """The crops of a video's first `num` hands, as the network would get them from
    its boxes (its box=, every frame's detections with boxes=), cut as
    `coco:FILE,boxes=` cuts them: <frame>_<hand>.png and grid.png in `out`."""
    from data_pipeline.coco import read_detections, square
    from data_pipeline.crop import cut_square
    from data_pipeline.video import frames, video_info
    from hjr.inference.track import _Frames, check_box

    info = video_info(source.path)
    padding = source.options.get("padding", 1.25)
    given = source.options.get("box")
    if given is not None:
        check_box(given, info)
    found = {}
    if source.options.get("boxes"):
        path, least = source.options["boxes"], source.options["min_score"]
        for hand in read_detections(path, _Frames(info.frames), least):
            found.setdefault(hand.image_id, []).append(hand.bbox)
    tiles, names = [], []
    for index, frame in frames(source.path):
        for n, bbox in enumerate(found.get(index, [given] if given else [])):
            if len(tiles) == num:
                break
            crop = cut_square(frame, square(bbox, padding))
            names.append(f"{index:05d}_{n}")
            write_png(out / f"{names[-1]}.png", crop)
            tiles.append(crop)
        if len(tiles) == num:
            break
    if tiles:
        write_png(out / "grid.png", contact_sheet(tiles[:GRID_MAX], names))
    print(f"hjr: wrote {len(tiles)} crops of {source} to {out}")
    return out
