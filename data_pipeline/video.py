"""Videos: frames in (OpenCV), annotated frames out, and a synthetic video of a drawn
hand moving and turning, with its joints in every frame.

Frames are RGB uint8 [H, W, 3]; a frame's index is its image_id. Keypoints in a frame
are continuous pixels (pixel i covers [i, i+1)), as everywhere in hjr; COCO results
write them as pixel indices (data_pipeline.coco).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .keypoints import NUM_JOINTS

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
FOURCC = {".avi": "MJPG"}  # others: mp4v, which OpenCV's FFmpeg writes everywhere


@dataclass
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    frames: int  # as the container says; 0 where it does not


def open_video(path):
    """(cv2.VideoCapture, VideoInfo) of a video file whose first frame decodes;
    UserError naming the file otherwise."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such video file")
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read() if capture.isOpened() else (False, None)
    if not ok or frame is None:
        capture.release()
        raise UserError(f"{path}: not a video OpenCV can read (no first frame)")
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    fps = capture.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(
        path=path,
        width=frame.shape[1],
        height=frame.shape[0],
        fps=fps if fps and np.isfinite(fps) and fps > 0 else 30.0,
        frames=max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0),
    )
    return capture, info


def video_info(path) -> VideoInfo:
    """The size, rate and length of a readable video (open_video)."""
    capture, info = open_video(path)
    capture.release()
    return info


def frames(path):
    """Yield (index, frame RGB uint8 [H, W, 3]) of a video, in order."""
    capture, _ = open_video(path)
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield index, np.ascontiguousarray(frame[..., ::-1])
            index += 1
    finally:
        capture.release()


class VideoWriter:
    """Frames RGB uint8 [H, W, 3] into a video file (mp4v for .mp4, MJPG for .avi),
    written under a temporary name and renamed when closed without error."""

    def __init__(self, path, fps: float, width: int, height: int):
        import cv2

        from .files import temporary_file

        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise UserError(
                f"{self.path}: expected a video file name ({', '.join(VIDEO_SUFFIXES)})"
            )
        self.tmp = temporary_file(self.path, self.path.suffix)
        fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(self.path.suffix.lower(), "mp4v"))
        self.writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, (width, height))
        if not self.writer.isOpened():
            self.tmp.unlink()
            raise UserError(f"{self.path}: OpenCV cannot write this kind of video")

    def write(self, frame):
        self.writer.write(np.ascontiguousarray(frame[..., ::-1]))

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        import os

        self.writer.release()
        if kind is None:
            os.replace(self.tmp, self.path)
        elif self.tmp.exists():
            self.tmp.unlink()


# -- a synthetic video ------------------------------------------------------------


@dataclass
class Motion:
    """How the drawn hand moves over a synthetic video: its centre along a
    Lissajous path `travel` px about the frame's centre, turning by up to `turn`
    degrees, its size by up to a factor `grow`, `period` frames a cycle."""

    travel: float = 70.0
    turn: float = 45.0
    grow: float = 1.25
    period: float = 300.0  # 10 s at 30 frames/s: up to 3 px and 1 degree a frame


def _hand_and_mask(seed: int, index: int):
    """(frame, keypoints [21, 2], visible [21], hand mask float [H, W, 1]) of a
    synthetic hand: the mask is where the drawn hand changed the frame."""
    from .synthetic import render_hand_with_visibility

    image, keypoints, visible = render_hand_with_visibility(seed, index)
    empty, _, _ = render_hand_with_visibility(seed, index, {"draw_hand": False})
    mask = (np.abs(image.astype(np.int16) - empty).max(-1) > 0).astype(np.float32)
    return image, empty, keypoints.astype(np.float64), visible, mask[..., None]


def synthetic_video(path, count: int = 300, seed: int = 0, hand: int = 3, fps=30.0,
                    motion: Motion = Motion()) -> dict:  # fmt: skip
    """Write `count` frames of drawn hand `hand` (of data_pipeline.synthetic's
    `seed`) moving and turning over its own background (Motion) to a video file at
    `path`; returns {"keypoints": float [T, 21, 2] (continuous frame pixels),
    "visible": bool [21], "width", "height", "fps"}. The hand is one rigid drawing,
    rotated, scaled and moved by an affine map per frame (bilinear), its joints
    moved by the same map exactly."""
    import cv2

    image, background, keypoints, visible, mask = _hand_and_mask(seed, hand)
    height, width = image.shape[:2]
    centre = (keypoints.min(0) + keypoints.max(0)) / 2
    truth = np.empty((count, NUM_JOINTS, 2))
    with VideoWriter(path, fps, width, height) as out:
        for t in range(count):
            phase = 2 * np.pi * t / motion.period
            target = np.array([width, height]) / 2 + motion.travel * np.array(
                [np.sin(phase), np.sin(2 * phase + 0.5)]
            )
            angle = motion.turn * np.sin(phase + 1.0)
            factor = motion.grow ** np.sin(0.5 * phase)
            # cv2's affine maps act on pixel indices; ours are continuous (+0.5).
            matrix = cv2.getRotationMatrix2D(tuple(centre - 0.5), angle, factor)
            matrix[:, 2] += target - centre
            warp = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            hand = cv2.warpAffine(image, matrix, (width, height), **warp)
            alpha = cv2.warpAffine(mask, matrix, (width, height), **warp)[..., None]
            frame = hand * alpha + background * (1 - alpha)
            out.write(np.clip(np.round(frame), 0, 255).astype(np.uint8))
            points = (keypoints - 0.5) @ matrix[:, :2].T + matrix[:, 2] + 0.5
            truth[t] = points
    return {
        "keypoints": truth,
        "visible": np.asarray(visible, bool),
        "width": width,
        "height": height,
        "fps": fps,
    }
