"""Writers of small test inputs in the exact on-disk layouts the readers expect.

- (the competition's files: data_pipeline.kaggle_h5.write_kaggle_files)
- write_rhd_tree: an RHD_published_v2 tree built from the 3 real RHD frames in
  tests/data/rhd_samples (their origin and terms: SOURCE.md there).
"""

from __future__ import annotations

import json
import pickle
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import h5py
import numpy as np

RHD_SIZE = 320
BAD_FRAME_ID = 11112  # training frame whose chosen hand leaves the frame
OUT_OF_FRAME_JOINT = 5
HIDDEN_JOINTS = [1, 2, 6]  # flagged hidden in frame 1111 (the fixtures flag none)
RHD_SAMPLES = Path(__file__).resolve().parent / "data" / "rhd_samples"  # fixtures


def rhd_samples() -> list[dict]:
    """The real RHD frames with their mmpose annotations, sorted by id.

    Each: {"id", "png" (Path), "hand" ("left"/"right"), "keypoints" float32 [21, 2],
    "visible" float32 [21], "xyz" float32 [21, 3] metres, "K" float32 [3, 3]}.
    """
    folder = RHD_SAMPLES
    if not (folder / "test_rhd.json").is_file():
        raise FileNotFoundError(f"{folder}: no test_rhd.json (a test fixture)")
    coco = json.loads((folder / "test_rhd.json").read_text())
    annotations = {a["image_id"]: a for a in coco["annotations"]}
    samples = []
    for image in sorted(coco["images"], key=lambda im: im["id"]):
        anno = annotations[image["id"]]
        points = np.asarray(anno["keypoints"], dtype=np.float32)
        (fx, fy), (cx, cy) = image["cam_param"]["focal"], image["cam_param"]["princpt"]
        samples.append(
            {
                "id": image["id"],
                "png": folder / image["file_name"],
                "hand": anno["hand_type"],
                "keypoints": points[:, :2],
                "visible": points[:, 2],
                "xyz": np.asarray(anno["joint_cam"], dtype=np.float32) / 1000.0,
                "K": np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float32),
            }
        )
    return samples


def write_h5(path: Path, datasets: dict[str, np.ndarray]) -> Path:
    """Write {"group/name": array} as-is into a new HDF5 file; returns path."""
    with h5py.File(path, "w") as h5:
        for name, array in datasets.items():
            h5.create_dataset(name, data=array)
    return path


def random_frames(
    n: int, height: int, width: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Noise images uint8 [n, H, W, 3] and keypoints float32 [n, 21, 2] in the frame."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)
    keypoints = rng.uniform(0, 1, size=(n, 21, 2)) * np.array([width, height])
    return images, keypoints.astype(np.float32)


def png_bytes(rgb: np.ndarray) -> bytes:
    """A PNG (colour type 2, 8 bit) of uint8 [H, W, 3] RGB, written without OpenCV."""
    height, width, _ = rgb.shape
    rows = np.concatenate(
        [np.zeros((height, 1), np.uint8), rgb.reshape(height, -1)], axis=1
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes()))
        + chunk(b"IEND", b"")
    )


def write_rhd_tree(root: Path) -> dict:
    """Build root/RHD_published_v2/{training,evaluation}/ from the real RHD frames.

    training: the real ids (111, 1111, 11111) plus BAD_FRAME_ID, a copy of frame 111
        whose chosen (left) hand has joint OUT_OF_FRAME_JOINT at x = 331.5, so it is
        skipped. In frame 1111 the *other* hand's joint 1 is at x = -3, which must not
        cause a skip. evaluation: the same three real frames as ids 0, 1, 2.
    color/ holds the original PNG bytes. mask/ marks the annotated hand (dilated convex
    hull of its keypoints with its palm label, the thumb with its thumb label), a
    smaller other hand, and a body region (label 1). uv_vis has the JSON keypoints in
    the annotated hand's slot and a shrunken copy, placed on the other-hand blob, in
    the other slot; xyz and K follow the JSON's joint_cam and cam_param. The
    visibility flags are the JSON's (all 1) for the annotated hand, except
    HIDDEN_JOINTS in frame 1111 (0), and 0 for every joint of the other hand.
    Returns {"rhd_dir": Path, split: {"ids": [...], "keypoints": {id: [21, 2]},
    "visible": {id: bool [21]}, "hand": {id: str}, "uv_vis": {id: [42, 3]},
    "png": {id: Path}, "skipped": [...]}}.
    """
    samples = rhd_samples()
    rhd_dir = Path(root) / "RHD_published_v2"
    bad = dict(samples[0], id=BAD_FRAME_ID, keypoints=samples[0]["keypoints"].copy())
    bad["keypoints"][OUT_OF_FRAME_JOINT, 0] = 331.5
    layouts = {
        "training": samples + [bad],
        "evaluation": [dict(s, id=i) for i, s in enumerate(samples)],
    }
    info = {"rhd_dir": rhd_dir}
    for split, frames in layouts.items():
        info[split] = _write_split(rhd_dir / split, split, frames)
    return info


def _write_split(split_dir: Path, split: str, frames: list[dict]) -> dict:
    (split_dir / "color").mkdir(parents=True)
    (split_dir / "mask").mkdir()
    anno, info = {}, {"ids": []}
    for key in ("keypoints", "visible", "hand", "uv_vis", "png"):
        info[key] = {}
    for frame in frames:
        sample_id = frame["id"]
        own = frame["keypoints"]
        other = _other_hand(own)
        shutil.copyfile(frame["png"], split_dir / "color" / f"{sample_id:05d}.png")
        left_first = frame["hand"] == "left"
        mask = np.zeros((RHD_SIZE, RHD_SIZE), np.uint8)
        mask[250:, 60:260] = 1
        _paint_hand(mask, other, right=left_first)
        _paint_hand(mask, own, right=not left_first)
        cv2.imwrite(str(split_dir / "mask" / f"{sample_id:05d}.png"), mask)
        flags = frame["visible"].copy()
        if frame["png"].name == "01111.png":
            other[1, 0] = -3.0
            flags[HIDDEN_JOINTS] = 0
        hands = (own, other) if left_first else (other, own)
        both = (flags, np.zeros(21)) if left_first else (np.zeros(21), flags)
        visible = np.concatenate(both)
        uv_vis = np.concatenate([np.concatenate(hands), visible[:, None]], axis=1)
        anno[sample_id] = {
            "uv_vis": uv_vis.astype(np.float32),
            "xyz": _xyz(frame, other, left_first),
            "K": frame["K"],
        }
        info["ids"].append(sample_id)
        info["keypoints"][sample_id] = own.astype(np.float32)
        info["visible"][sample_id] = flags == 1
        info["hand"][sample_id] = frame["hand"]
        info["uv_vis"][sample_id] = anno[sample_id]["uv_vis"]
        info["png"][sample_id] = frame["png"]
    with open(split_dir / f"anno_{split}.pickle", "wb") as f:
        pickle.dump(anno, f)
    info["skipped"] = [BAD_FRAME_ID] if split == "training" else []
    return info


def _other_hand(keypoints: np.ndarray) -> np.ndarray:
    """A hand 0.4 times the size of keypoints [21, 2], mirrored through the centre."""
    centre = keypoints.mean(axis=0)
    target = np.clip(RHD_SIZE - centre, 40, RHD_SIZE - 40)
    return ((keypoints - centre) * 0.4 + target).astype(np.float32)


def _paint_hand(mask: np.ndarray, keypoints: np.ndarray, right: bool) -> None:
    """Label a hand in mask [320, 320]: palm label on the hull, thumb label on 1..4."""
    offset = 16 if right else 0
    hull = np.zeros_like(mask)
    points = np.round(np.clip(keypoints, 0, RHD_SIZE - 1)).astype(np.int32)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)
    hull = cv2.dilate(hull, np.ones((7, 7), np.uint8))
    mask[hull > 0] = 17 + offset
    thumb = points[[0, 4, 3, 2, 1]].reshape(-1, 1, 2)
    cv2.polylines(mask, [thumb], False, 2 + offset, thickness=3)


def _xyz(frame: dict, other: np.ndarray, left_first: bool) -> np.ndarray:
    """xyz [42, 3] metres: the JSON's joints, the other hand back-projected with K."""
    depth = float(np.median(frame["xyz"][:, 2]))
    k = frame["K"]
    other_xyz = np.stack(
        [
            (other[:, 0] - k[0, 2]) * depth / k[0, 0],
            (other[:, 1] - k[1, 2]) * depth / k[1, 1],
            np.full(len(other), depth),
        ],
        axis=1,
    )
    hands = (frame["xyz"], other_xyz) if left_first else (other_xyz, frame["xyz"])
    return np.concatenate(hands).astype(np.float32)


def write_coco_hands(
    folder: Path, count: int, seed: int = 0, order: str = "coco", wholebody=False
) -> Path:
    """A COCO keypoint file of `count` synthetic hands and their frames, as a user's
    dataset: <folder>/images/<n>.png and <folder>/annotations/hands.json (its
    file_names relative to <folder>), keypoints as pixel indices (our positions
    - 0.5) in the file's `order` ("coco": each finger base -> tip), v 2 visible /
    1 hidden, and in every third hand joint n % 21 unlabelled (v 0). Bboxes: the
    keypoints' box grown 1.2 times about its centre. With `wholebody`, COCO-
    WholeBody people: each image holds two frames side by side (640 x 320), the
    left hand the first, the right hand the second, marked invalid (zeros) in
    every other person. Returns the JSON's path; its hands' positions (ours, RHD
    order, NaN where unlabelled) are under "hjr_truth" of each annotation."""
    from data_pipeline.synthetic import render_hand_with_visibility

    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    joints = np.arange(21)
    if order == "coco":
        joints = np.array([0] + [1 + 4 * f + 3 - i for f in range(5) for i in range(4)])

    def hand(n, dx=0.0):
        image, keypoints, visible = render_hand_with_visibility(seed, n)
        keypoints = keypoints.astype(np.float64) + (dx, 0.0)
        flags = np.where(visible, 2, 1)
        if n % 3 == 0:
            flags[n % 21] = 0
        lo, hi = keypoints.min(0), keypoints.max(0)
        centre, size = (lo + hi) / 2, (hi - lo) * 1.2
        bbox = [*(centre - size / 2), *size]
        index_px = keypoints - 0.5  # COCO's pixel indices
        triplets = np.concatenate([index_px, flags[:, None]], 1)
        triplets[flags == 0] = 0
        truth = np.where(flags[:, None] > 0, keypoints, np.nan)
        return image, triplets[joints].reshape(-1).tolist(), bbox, truth

    images, annotations = [], []
    for n in range(count):
        file_name = f"images/{n:04d}.png"
        if not wholebody:
            image, kpts, bbox, truth = hand(n)
            entry = {"keypoints": kpts, "bbox": bbox, "num_keypoints": 21}
            truths = [truth.tolist()]
        else:
            left, kpts_l, box_l, truth_l = hand(2 * n)
            right, kpts_r, box_r, truth_r = hand(2 * n + 1, dx=320.0)
            image = np.concatenate([left, right], axis=1)
            valid_r = n % 2 == 0
            entry = {
                "keypoints": [0] * 51,
                "bbox": [0, 0, 640, 320],
                "lefthand_kpts": kpts_l,
                "lefthand_box": box_l,
                "lefthand_valid": True,
                "righthand_kpts": kpts_r if valid_r else [0] * 63,
                "righthand_box": box_r if valid_r else [0, 0, 0, 0],
                "righthand_valid": valid_r,
            }
            truths = [truth_l.tolist()] + ([truth_r.tolist()] if valid_r else [])
        cv2.imwrite(str(folder / file_name), image[..., ::-1])
        height, width = image.shape[:2]
        images.append({"id": 100 + n, "file_name": file_name, "width": width})
        images[-1]["height"] = height
        entry.update(id=1000 + n, image_id=100 + n, category_id=1, iscrowd=0)
        annotations.append({**entry, "hjr_truth": truths})
    category = {"id": 1, "name": "hand", "keypoints": [str(j) for j in range(21)]}
    data = {"images": images, "annotations": annotations, "categories": [category]}
    path = folder / "annotations" / "hands.json"
    path.write_text(json.dumps(data))
    return path
