"""Hands in a video (`--data video:FILE,...`): tracked from one box, or found in every
frame by a detector's boxes.

Tracking (`box=X,Y,W,H`), as MediaPipe's hand landmark model tracks: the hand's box is
given in the first frame; each next frame's crop is cut around the joints found in the
frame before, by the rule of the model's training crops (data_pipeline.crop_rule: read
off its training data and its own predictions there), so every crop has the geometry
the model learned, moved on by the hand's recent motion (a damped velocity of the
square's centre: the joints found are a frame old). Where the joints are lost (their
mean score under `lost`, or collapsed to a point), the next frame starts again from
that frame's best detection (with `boxes=`) or the given box.

Detections alone (`boxes=DETS.json`): every box of a COCO detection results list
(image_id = the frame's index) is one hand, cut as `coco:FILE,boxes=DETS.json` cuts
it (a padded square about the box, data_pipeline.coco.square).

Each frame's crop is one bilinear cut from the frame (data_pipeline.crop.cut_square)
and one call of the model: the demo's model exported to ONNX or LiteRT tracks at
340-520 frames a second on 2 CPU cores, video decoding included (docs/benchmarks.md).
"""

import contextlib
import time
from dataclasses import dataclass

import numpy as np

from data_pipeline.crop import cut_square
from data_pipeline.crop_rule import CropRule, joints_box, learn
from data_pipeline.errors import UserError
from data_pipeline.keypoints import CROP_SIZE

LOST_SCORE = 0.1  # mean joint score under which the hand counts as lost
# Each frame's move of the square carries on into the next with this weight on the
# moves before it: the joints found are a frame old, and a hand in motion keeps
# moving; half damps the joints' noise without lagging behind.
MOMENTUM = 0.5
RULE_CROPS = 480  # validation crops the crop rule's joints part is learned on
SMALLEST_HAND = 4.0  # px: joints within a box this small have collapsed


@dataclass
class Frame:
    """One hand in one frame."""

    index: int  # the frame's index (its image_id)
    square: tuple  # the crop's square (x0, y0, side), continuous frame pixels
    keypoints: np.ndarray  # float [21, 2] continuous frame pixels
    scores: np.ndarray  # float [21] in (0, 1]
    box_score: float  # the detection's score, 1 for a given or tracked box
    how: str  # "given", "detected" or "tracked": where the square came from
    lost: bool  # whether these joints are too unsure to track from

    @property
    def score(self) -> float:
        return self.box_score * float(np.mean(self.scores))


def model_crop_rule(model, data_dir=None, predictor=None) -> CropRule:
    """The crop rule of a run folder or an hjr export: the export's own (`hjr
    export` writes it), else learned from the run's source (prepared first where
    it is not): its validation crops' labels and the model's predictions on them
    (`predictor`, else the model loaded)."""
    from data_pipeline.sources import parse_source
    from data_pipeline.store import open_split
    from hjr import runs
    from hjr.inference.predictors import load_predictor
    from hjr.inference.runtimes import export_info

    info = export_info(model)
    if info is not None and "crop_rule" in info:
        return CropRule.from_dict(info["crop_rule"])
    conf = info["config"] if info is not None else runs.load_config(model)
    try:
        source = parse_source(conf["data"])
        crops = open_split(source, "validation", conf.get("crop", "biased"), data_dir)
    except UserError as error:
        raise UserError(
            f"{model}: tracking cuts crops as the model's training data was cut, and "
            f"that data cannot be read here ({error}); export the model where it can "
            "(hjr export keeps the rule)"
        ) from None
    predictor = predictor or load_predictor(model)
    first = crops.rows(np.arange(min(len(crops), RULE_CROPS)), ("image", "keypoints"))
    found = predictor.joints(first["image"], False)[0]
    return learn(first["keypoints"], found)


def _to_frame(points, square):
    """Crop pixels [..., 2] of a square -> continuous frame pixels."""
    x0, y0, side = square
    return np.asarray(points, np.float64) * (side / CROP_SIZE) + (x0, y0)


def _predict(predictor, frame, squares, tta):
    """(keypoints [N, 21, 2] frame pixels, scores [N, 21]) of the hands in squares."""
    crops = np.stack([cut_square(frame, square) for square in squares])
    keypoints, scores = predictor.joints(crops, tta)
    points = [_to_frame(p, square) for p, square in zip(keypoints, squares)]
    return np.array(points), np.asarray(scores, np.float64)


def _lost(keypoints, scores, lost_score) -> bool:
    extent = np.ptp(keypoints, axis=0).max() if np.isfinite(keypoints).all() else 0
    return float(np.mean(scores)) < lost_score or extent < SMALLEST_HAND


def track(predictor, video, rule, box=None, detections=None, tta=False,
          lost_score=LOST_SCORE, padding=1.25):  # fmt: skip
    """Yield (frame RGB uint8 [H, W, 3], [Frame]) for each frame of `video` (path):
    with `box` (x, y, w, h in the first frame) one tracked hand; else the hands of
    `detections` ({frame index: [Hand]}, data_pipeline.coco.read_detections) cut
    at their padded squares."""
    from data_pipeline.coco import square as padded_square
    from data_pipeline.video import frames

    detections = detections or {}
    square, how, motion, before = None, "given", np.zeros(2), None
    for index, frame in frames(video):
        found = detections.get(index, [])
        if box is None:
            if not found:
                yield frame, []
                continue
            squares = [padded_square(hand.bbox, padding) for hand in found]
            keypoints, scores = _predict(predictor, frame, squares, tta)
            yield frame, [
                Frame(index, s, k, c, hand.score, "detected", False)
                for s, k, c, hand in zip(squares, keypoints, scores, found)
            ]
            continue
        box_score = 1.0
        if square is None:  # the start, or lost: a detection, else the given box
            best = max(found, key=lambda hand: hand.score, default=None)
            start = box if best is None else best.bbox
            how = "given" if best is None else "detected"
            box_score = 1.0 if best is None else best.score
            square, motion, before = rule.square_of_box(start), np.zeros(2), None
        keypoints, scores = _predict(predictor, frame, [square], tta)
        lost = _lost(keypoints[0], scores[0], lost_score)
        yield frame, [
            Frame(index, square, keypoints[0], scores[0], box_score, how, lost)
        ]
        if lost:
            square = None
        else:
            found = rule.square(keypoints[0])
            square, motion = _next_square(before, found, motion)
            before = found
        how = "tracked"


def _next_square(before, found, motion, momentum=MOMENTUM):
    """The next frame's square: the rule's square on this frame's joints (`found`),
    moved on by the damped motion of those squares from frame to frame (`before`:
    the frame before's; None at a start); returns (square, motion)."""
    found = np.asarray(found, np.float64)
    if before is not None:
        step = found[:2] - np.asarray(before, np.float64)[:2]
        motion = momentum * motion + (1 - momentum) * step
    return (found[0] + motion[0], found[1] + motion[1], found[2]), motion


def check_box(box, info):
    """UserError unless box (x, y, w, h) has a size and overlaps the frame."""
    x, y, w, h = box
    inside = x < info.width and y < info.height and x + w > 0 and y + h > 0
    if not (w > 0 and h > 0 and inside):
        raise UserError(
            f"box {x:g},{y:g},{w:g},{h:g}: expected a box of the first frame "
            f"(x, y, width, height; the frame is {info.width} x {info.height})",
            "data",
        )


def predict_video(model, source, out=None, visualize=None, tta=False, data_dir=None,
                  log=print, rule=None, show=True) -> dict:  # fmt: skip
    """Predict a video source (data_pipeline.sources: kind "video") with `model` (a
    run folder, an export, or a Predictor with its crop `rule`); write COCO keypoint
    results per frame to `out` and, with `visualize`, the video with every hand's
    crop box, bones and joints drawn; `show`: its progress. Returns {"frames",
    "hands", "lost", "seconds", "frames_per_s"}."""
    from data_pipeline.coco import read_detections
    from data_pipeline.files import write_json
    from data_pipeline.progress import progress
    from data_pipeline.video import VideoWriter, video_info
    from hjr.inference.predictors import Predictor, load_predictor

    info = video_info(source.path)
    box = source.options.get("box")
    if box is not None:
        check_box(box, info)
    detections = {}
    if source.options.get("boxes"):
        hands = read_detections(
            source.options["boxes"], _Frames(info.frames), source.options["min_score"]
        )
        for hand in hands:
            detections.setdefault(hand.image_id, []).append(hand)
    predictor = model if isinstance(model, Predictor) else load_predictor(model)
    if rule is None and box is not None:
        rule = model_crop_rule(model, data_dir, predictor)
    stream = track(
        predictor, source.path, rule, box, detections, tta,
        padding=source.options.get("padding", 1.25),
    )  # fmt: skip
    if show:
        stream = progress(stream, info.frames or None, "hjr: video", "frames")
    results, lost, count = [], 0, 0
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        writer = None
        if visualize is not None:  # renamed into place only if all goes well
            drawn = VideoWriter(visualize, info.fps, info.width, info.height)
            writer = stack.enter_context(drawn)
        for frame, hands in stream:
            count += 1
            lost += sum(hand.lost for hand in hands)
            results += [_result(hand) for hand in hands]
            if writer is not None:
                writer.write(_drawn(frame, hands))
    seconds = time.perf_counter() - started
    if out is not None:
        write_json(out, results)
    summary = {
        "frames": count,
        "hands": len(results),
        "lost": lost,
        "seconds": round(seconds, 3),
        "frames_per_s": round(count / max(seconds, 1e-9), 1),
    }
    if log is not None:
        log(
            f"hjr: {count} frames of {source.path}, {len(results)} hands "
            f"({lost} lost), {summary['frames_per_s']} frames/s (decoding included)"
        )
    return summary


class _Frames(dict):
    """The frames of a video as read_detections' images: any frame index (all of
    them, where the container does not say how many there are)."""

    def __init__(self, count):
        super().__init__()
        self.count = count

    def __contains__(self, index):
        ok = isinstance(index, int) and not isinstance(index, bool) and index >= 0
        return ok and (not self.count or index < self.count)

    def __getitem__(self, index):
        return f"frame {index}"


def _result(hand: Frame) -> dict:
    """A COCO keypoint result of a hand (pixel indices, COCO's joint order), with
    how it was cut."""
    from data_pipeline.coco import file_joints

    points = hand.keypoints - 0.5
    triplets = np.concatenate([points, hand.scores[:, None]], axis=1)
    triplets = triplets[file_joints("coco")]
    x0, y0, side = hand.square
    return {
        "image_id": hand.index,
        "category_id": 1,
        "keypoints": [round(float(v), 4) for v in triplets.reshape(-1)],
        "score": round(hand.score, 6),
        "bbox": [round(float(v), 3) for v in (x0, y0, side, side)],
        "crop": hand.how,
        "lost": bool(hand.lost),
    }


def _drawn(frame, hands):
    from hjr.draw import draw_hands

    drawn = [
        {
            "bbox": (h.square[0], h.square[1], h.square[2], h.square[2]),
            "keypoints": h.keypoints - 0.5,
            "score": h.score,
        }
        for h in hands
    ]
    return draw_hands(frame, drawn)


def video_errors(predictor, path, keypoints, rule, tta=False) -> dict:
    """How well a model follows the hand of a video whose joints are known
    (keypoints float [T, 21, 2], continuous frame pixels): the mean joint error
    (frame pixels) with the true box in every frame (the square about the true
    joints' box, as the training crops sit about their labels' box), and tracked
    from the first frame's true box (track), with the frames it lost."""
    from data_pipeline.video import frames

    keypoints = np.asarray(keypoints, np.float64)
    true_box = []
    for index, frame in frames(path):
        # the square about the true joints' box: the labels' geometry
        square = rule.square_of_box(joints_box(keypoints[index]))
        found, _ = _predict(predictor, frame, [square], tta)
        true_box.append(np.linalg.norm(found[0] - keypoints[index], axis=-1).mean())
    tracked, lost = [], 0
    for _, (hand,) in track(predictor, path, rule, joints_box(keypoints[0]), tta=tta):
        error = np.linalg.norm(hand.keypoints - keypoints[hand.index], axis=-1)
        tracked.append(error.mean())
        lost += hand.lost
    return {
        "true_box": float(np.mean(true_box)),
        "tracked": float(np.mean(tracked)),
        "lost": int(lost),
        "frames": len(tracked),
    }
