"""COCO keypoint files: hand datasets in, keypoint results out.

A COCO keypoint file is JSON with `images` (id, file_name, width, height),
`annotations` (id, image_id, category_id, bbox [x, y, w, h], keypoints [x1, y1, v1,
...], also accepted as [[x, y, v], ...]) and `categories`. v = 0: not labelled (no
position), 1: labelled but hidden, 2: labelled and visible. COCO-WholeBody's
annotations are people with up to two hands each: `lefthand_kpts` /
`righthand_kpts` (21 x 3 values), `lefthand_box` / `righthand_box` and
`lefthand_valid` / `righthand_valid`.

Hands: one sample per annotation with at least one labelled joint (a WholeBody
person gives one per valid hand with a labelled joint), in the file's order; the
sample's id is its position in that list. A file with no labelled joint at all
(e.g. a detector's boxes to predict on: annotations with a `bbox` and no
`keypoints`) gives one unlabelled sample per box, with the annotation's `score`
where it has one.

Boxes from a detector: a COCO detection results list (`[{image_id, category_id,
bbox, score}]`, what detectors and the COCO tools write) read against a COCO file,
which names the images (`read_detections`); where that file is labelled, each
labelled hand is matched to a detection as COCO's evaluation matches them
(`match`). A folder of images: one hand per image, its box the whole image
(`folder_hands`).

The crop: a square centred on the hand's bbox centre c = (x + w/2, y + h/2), of side
s = padding x max(w, h), resized to 128 x 128 (bilinear, pixel centres at i + 0.5,
as every hjr crop; outside the image is zero). The bbox is continuous (its corner at
(x, y)) while COCO keypoints are pixel indices (pixel (0, 0)'s centre is (0, 0)),
and hjr's keypoints are continuous crop pixels (pixel i covers [i, i+1)), so a joint
k lands at (k + 0.5 - (c - s/2)) * 128 / s in the crop, and a prediction p goes
back to p * s / 128 + (c - s/2) - 0.5 (`to_crop`, `from_crop`).

Joint order: hjr keeps RHD's order (0 wrist, then per finger tip -> base).
`order=coco` (COCO-WholeBody-Hand, OneHand10K, FreiHAND, Panoptic: each finger base
-> tip) reverses each finger's four joints; `order=rhd` (mmpose's RHD files, whose
category names say otherwise) keeps them. Category names are not read.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .keypoints import CROP_SIZE, NUM_JOINTS

ORDERS = ("coco", "rhd")
SIDES = ("", "left", "right")  # the `hand` field of a sample: 0, 1, 2


def file_joints(order: str) -> np.ndarray:
    """int [21]: the file's joint index of each hjr joint (its own inverse)."""
    if order == "rhd":
        return np.arange(NUM_JOINTS)
    if order == "coco":
        fingers = [1 + 4 * f + (3 - i) for f in range(5) for i in range(4)]
        return np.array([0] + fingers)
    raise UserError(f"expected one of {', '.join(ORDERS)}", "order", order)


MATCH_IOU = 0.5  # a detection finds a labelled hand from this IoU of their boxes
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class Hand:
    """One hand of a COCO file (or a detection, or an image of a folder)."""

    index: int  # position in the file's list of hands: the sample id
    image_id: int
    file_name: str
    bbox: tuple  # x, y, w, h (continuous pixels); None: the whole image
    keypoints: np.ndarray  # float64 [21, 2] pixel indices, hjr's order; NaN: v = 0
    flags: np.ndarray  # int [21] COCO's v, hjr's order
    category_id: int
    annotation_id: int
    side: int  # 0 (a hand file), 1 left, 2 right (COCO-WholeBody)
    score: float = 1.0  # the box's score (a detector's), 1 where none is given
    size: float = None  # PCK's norm: max(w, h) of the labelled hand's box


def _unlabelled():
    """(keypoints, flags) of a hand without labels: NaN and 0."""
    return np.full((NUM_JOINTS, 2), np.nan), np.zeros(NUM_JOINTS, np.int64)


def load(path) -> dict:
    """The JSON of a COCO keypoint file; UserError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such annotation file; expected COCO keypoint JSON")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(key), list) for key in ("images", "annotations")
    ):
        raise UserError(
            f"{path}: not a COCO keypoint file; expected a JSON object with "
            "'images' and 'annotations' lists"
        )
    return data


def _triplets(values, where: str, field: str) -> np.ndarray:
    """float64 [21, 3] of a keypoints field (63 numbers, flat or as triplets)."""
    try:
        array = np.asarray(values, np.float64).reshape(-1)
    except (TypeError, ValueError):
        array = None
    if array is None or array.size != 3 * NUM_JOINTS:
        count = "not numbers" if array is None else f"{array.size} values"
        raise UserError(
            f"{where}, field '{field}': {count}; expected {3 * NUM_JOINTS} "
            f"({NUM_JOINTS} joints x (x, y, v))"
        )
    return array.reshape(NUM_JOINTS, 3)


def _bbox(values, where: str, field: str) -> tuple:
    try:
        box = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        box = ()
    if len(box) != 4 or not np.all(np.isfinite(box)) or min(box[2:]) <= 0:
        raise UserError(
            f"{where}, field '{field}' {values}: expected [x, y, w, h] with w > 0 "
            "and h > 0"
        )
    return box


def _annotation_hands(annotation, where):
    """(side, keypoints field or None for a box alone, bbox field) of each hand an
    annotation holds."""
    if "lefthand_kpts" in annotation or "righthand_kpts" in annotation:
        return [
            (n, f"{side}hand_kpts", f"{side}hand_box")
            for n, side in ((1, "left"), (2, "right"))
            if annotation.get(f"{side}hand_valid")
        ]
    if "keypoints" not in annotation:
        if "bbox" in annotation:  # a box to predict on, as a detector gives it
            return [(0, None, "bbox")]
        raise UserError(
            f"{where}: no field 'keypoints' nor 'bbox' (nor COCO-WholeBody's "
            "'lefthand_kpts' / 'righthand_kpts')"
        )
    return [(0, "keypoints", "bbox")]


def _score(value, where: str) -> float:
    """A box's score in [0, 1]; UserError naming it otherwise."""
    try:
        score = float(value)
    except (TypeError, ValueError):
        score = float("nan")
    if not 0 <= score <= 1:
        raise UserError(
            f"{where}, field 'score' {value!r}: expected a number in [0, 1]"
        )
    return score


def read_images(data, path) -> dict:
    """{image id: file_name} of a COCO file's `images`; UserError otherwise."""
    images = {}
    for n, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "file_name" not in image:
            raise UserError(f"{path}: images[{n}]: expected 'id' and 'file_name'")
        if not isinstance(image.get("id"), int):
            raise UserError(
                f"{path}: images[{n}], field 'id' {image.get('id')!r}: expected an "
                "integer"
            )
        images[image["id"]] = str(image["file_name"])
    return images


def read_hands(path, order: str = "coco") -> tuple:
    """(hands, images {image id: (file_name, width, height)}) of a COCO file;
    UserError naming the file, annotation and field for malformed input."""
    path = Path(path)
    data = load(path)
    joints = file_joints(order)
    images = read_images(data, path)
    found, labelled_any = [], False
    for n, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict):
            raise UserError(f"{path}: annotations[{n}]: expected an object")
        where = f"{path}: annotation {annotation.get('id', f'[{n}]')}"
        if annotation.get("image_id") not in images:
            raise UserError(
                f"{where}, field 'image_id' {annotation.get('image_id')!r}: no image "
                "with that id in 'images'"
            )
        for side, kpts_field, box_field in _annotation_hands(annotation, where):
            if kpts_field is None:
                points, flags = _unlabelled()
            else:
                field = annotation.get(kpts_field)
                values = _triplets(field, where, kpts_field)[joints]
                labelled = values[:, 2] > 0
                labelled_any |= bool(labelled.any())
                points = np.where(labelled[:, None], values[:, :2], np.nan)
                flags = values[:, 2]
            found.append((annotation, side, box_field, points, flags, where))
    hands = []
    for annotation, side, box_field, points, flags, where in found:
        if labelled_any and not (flags > 0).any():
            continue
        score = annotation.get("score", 1.0)
        hands.append(
            Hand(
                index=len(hands),
                image_id=annotation["image_id"],
                file_name=images[annotation["image_id"]],
                bbox=_bbox(annotation.get(box_field), where, box_field),
                keypoints=points,
                flags=flags.astype(np.int64),
                category_id=int(annotation.get("category_id", 1)),
                annotation_id=int(annotation.get("id", -1)),
                side=side,
                score=_score(score, where),
            )
        )
    return hands, labelled_any


def read_detections(path, images: dict, min_score: float = 0.0) -> list:
    """The hands of a COCO detection results list at `path`: one per entry (its
    image_id one of `images`, {id: file_name}, of the COCO file it is read
    against) scored at least min_score, unlabelled; UserError naming the file,
    the entry and the field otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such detection results file")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path}: not JSON ({error})") from None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # a COCO file of boxes reads the same
    if not isinstance(data, list):
        raise UserError(
            f"{path}: not COCO detection results; expected a JSON list of "
            "{image_id, category_id, bbox, score}"
        )
    hands = []
    for n, entry in enumerate(data):
        where = f"{path}: detection [{n}]"
        if not isinstance(entry, dict):
            raise UserError(f"{where}: expected an object")
        if entry.get("image_id") not in images:
            raise UserError(
                f"{where}, field 'image_id' {entry.get('image_id')!r}: no image with "
                "that id in the COCO file's 'images'"
            )
        score = _score(entry.get("score", 1.0), where)
        bbox = _bbox(entry.get("bbox"), where, "bbox")
        if score < min_score:
            continue
        points, flags = _unlabelled()
        hands.append(
            Hand(
                index=len(hands),
                image_id=entry["image_id"],
                file_name=images[entry["image_id"]],
                bbox=bbox,
                keypoints=points,
                flags=flags,
                category_id=int(entry.get("category_id", 1)),
                annotation_id=int(entry.get("id", n)),
                side=0,
                score=score,
            )
        )
    return hands


def iou(a, b) -> float:
    """Intersection over union of two boxes [x, y, w, h]."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match(truth: list, found: list, threshold: float = MATCH_IOU) -> list:
    """For each hand of `found` (detections), the hand of `truth` it finds, or
    None: as COCO's evaluation matches, per image, detections in descending score
    take the not yet matched hand with the highest IoU, at least `threshold`."""
    matched = [None] * len(found)
    by_image = {}
    for hand in truth:
        by_image.setdefault(hand.image_id, []).append(hand)
    taken = set()
    order = sorted(range(len(found)), key=lambda n: -found[n].score)
    for n in order:
        best, best_iou = None, threshold
        for hand in by_image.get(found[n].image_id, ()):
            overlap = iou(found[n].bbox, hand.bbox)
            if id(hand) not in taken and overlap >= best_iou:
                best, best_iou = hand, overlap
        if best is not None:
            taken.add(id(best))
            matched[n] = best
    return matched


def labelled_by_match(truth: list, found: list) -> tuple:
    """(found, with each matched detection carrying its hand's labels, the number
    of labelled hands of `truth` that no detection found)."""
    labelled = [hand for hand in truth if (hand.flags > 0).any()]
    pairs = match(labelled, found)
    for hand, label in zip(found, pairs):
        if label is not None:
            hand.keypoints, hand.flags = label.keypoints, label.flags
            hand.side, hand.size = label.side, max(label.bbox[2:])
    return found, len(labelled) - sum(label is not None for label in pairs)


def folder_hands(folder) -> list:
    """One unlabelled hand per image file of `folder` (IMAGE_SUFFIXES, sorted by
    name), its box the whole image; UserError for a folder without images."""
    folder = Path(folder)
    files = sorted(
        p.name
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise UserError(
            f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder"
        )
    hands = []
    for n, name in enumerate(files):
        points, flags = _unlabelled()
        hands.append(Hand(n, n, name, None, points, flags, 1, n, 0))
    return hands


def image_folder(path, hands, images=None) -> Path:
    """Where the images of a COCO file are: `images` where given, else the file's
    folder or its parent, whichever holds the first hand's image."""
    path = Path(path)
    candidates = [Path(images)] if images else [path.parent, path.parent.parent]
    if not hands:
        return candidates[0]
    for folder in candidates:
        if (folder / hands[0].file_name).is_file():
            return folder
    tried = " or ".join(str(folder) for folder in candidates)
    hint = "" if images else "; give the image folder with images=DIR"
    raise UserError(f"{path}: image '{hands[0].file_name}' not found in {tried}{hint}")


def square(bbox, padding: float) -> tuple:
    """The crop's square (x0, y0, side) in continuous frame pixels: centred on the
    bbox, side padding x max(w, h)."""
    x, y, w, h = bbox
    side = padding * max(w, h)
    return x + w / 2 - side / 2, y + h / 2 - side / 2, side


def to_crop(keypoints, box) -> np.ndarray:
    """COCO keypoints (pixel indices) [..., 2] -> crop pixels of the square box."""
    x0, y0, side = box
    return (np.asarray(keypoints, np.float64) + 0.5 - (x0, y0)) * (CROP_SIZE / side)


def from_crop(points, box) -> np.ndarray:
    """Crop pixels [..., 2] of the square box -> COCO keypoints (pixel indices)."""
    x0, y0, side = box
    return np.asarray(points, np.float64) * (side / CROP_SIZE) + (x0, y0) - 0.5


def read_image(file: Path, where: str) -> np.ndarray:
    """uint8 [H, W, 3] RGB; UserError naming the file if it cannot be read."""
    import cv2

    if not file.is_file():
        raise UserError(f"{where}: image file {file} not found")
    data = np.fromfile(file, dtype=np.uint8)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:
        image = None
    if image is None:
        raise UserError(f"{where}: image file {file} could not be decoded")
    return np.ascontiguousarray(image[..., ::-1])


def crops(path, hands, folder, padding, tells_visibility=True, context=False):
    """The samples (id, crop, keypoints, visible, fields) of `hands`, in order;
    visible: v = 2, or where the files do not tell (tells_visibility False) v > 0.
    With `context`, the crops' surroundings in the image's pixels
    (data_pipeline.crop.frame_slice: a tuple (pixels, place)) in their place."""
    from .crop import cut_square, frame_slice

    cached = (None, None)
    for hand in hands:
        file = folder / hand.file_name
        if cached[0] != file:
            cached = (file, read_image(file, f"{path}: image {hand.image_id}"))
        height, width = cached[1].shape[:2]
        bbox = hand.bbox or (0.0, 0.0, float(width), float(height))
        box = square(bbox, padding)
        fields = {
            "box": box,
            "bbox": bbox,
            "bbox_size": hand.size or max(bbox[2:]),
            "score": hand.score,
            "image_id": hand.image_id,
            "category_id": hand.category_id,
            "annotation_id": hand.annotation_id,
            "hand": hand.side,
            "file_name": hand.file_name,
            "path": str(file.resolve()),
        }
        keypoints = to_crop(hand.keypoints, box).astype(np.float32)
        visible = hand.flags == 2 if tells_visibility else hand.flags > 0
        cut = frame_slice if context else cut_square
        yield hand.index, cut(cached[1], box), keypoints, visible, fields


def results(split, ids, predictions, order: str, scores=None) -> list:
    """COCO keypoint results of predictions float [N, 21, 2] (crop pixels) for the
    samples `ids` of a prepared COCO (or image folder) split: keypoints in the
    original image's pixel indices and the file's joint order, each triplet's
    third value its joint's score (scores float [N, 21] in (0, 1]; 1 where not
    given), `score` the box's score times the mean joint score (mmpose's
    convention); COCO-WholeBody hands carry "hand": "left" / "right", an image
    folder's hands "file_name"."""
    rows = split.positions(ids)
    joints = file_joints(order)  # its own inverse
    predictions = np.asarray(predictions, np.float64)
    if scores is None:
        scores = np.ones(predictions.shape[:2])
    out = []
    for row, points, joint_scores in zip(rows, predictions, np.asarray(scores)):
        fields = {key: values[row] for key, values in split.fields.items()}
        frame = from_crop(points, fields["box"])[joints]
        triplets = np.concatenate([frame, joint_scores[joints, None]], axis=1)
        box_score = float(fields.get("score", 1.0))
        entry = {
            "image_id": _plain(fields["image_id"]),
            "category_id": int(fields["category_id"]),
            "keypoints": [round(float(v), 4) for v in triplets.reshape(-1)],
            "score": round(box_score * float(np.mean(joint_scores)), 6),
        }
        if fields["hand"]:
            entry["hand"] = SIDES[int(fields["hand"])]
        if split.kind == "images":
            entry["file_name"] = str(fields["file_name"])
        out.append(entry)
    return out


def _plain(value):
    return int(value) if float(value).is_integer() else float(value)
