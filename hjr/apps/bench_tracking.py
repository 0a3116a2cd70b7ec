"""`hjr bench --tracking MODEL`: how fast a model tracks a hand through a video on
this machine, video decoding included, with and without drawing the video.

The video is drawn (data_pipeline.video.synthetic_video: a hand of the synthetic
test frames moving and turning), so the figure needs no download; the model is a
run folder or, for speed, an export (`hjr export --format onnx|tflite`). Each pass
runs `hjr predict --data video:...,box=... --no-tta` as a user would
(hjr.inference.track.predict_video), after one pass that loads and warms the model.
"""

import os
import platform
import tempfile
from pathlib import Path

from data_pipeline.coco import file_joints
from data_pipeline.crop_rule import joints_box
from data_pipeline.examples import TEST_INDEX_OFFSET
from data_pipeline.sources import Source
from hjr.apps.bench_timing import time_calls

HAND = TEST_INDEX_OFFSET + 1  # a hand never trained on


def bench_tracking(model, frames=300, repeats=3, data_dir=None) -> dict:
    """{frames_per_s, ms_per_frame {median, p90, runs}} of tracking without and with
    the annotated video, the tracked error against the drawn truth, and the
    settings."""
    import numpy as np

    from data_pipeline.video import synthetic_video
    from hjr.inference.predictors import load_predictor
    from hjr.inference.track import model_crop_rule, predict_video

    predictor = load_predictor(model)
    rule = model_crop_rule(model, data_dir, predictor)  # once, not timed
    with tempfile.TemporaryDirectory(prefix="hjr-bench-video-") as scratch:
        video = Path(scratch) / "hand.mp4"
        truth = synthetic_video(video, count=frames, hand=HAND)["keypoints"]
        source = Source("video", video, {"box": joints_box(truth[0]), "min_score": 0.0})
        out = Path(scratch) / "results.json"

        def tracking(drawn=None):
            return predict_video(
                predictor, source, out, drawn, rule=rule, log=None, show=False
            )

        tracking()  # loads the runtime's kernels, the video's codec
        result = {}
        for name, drawn in (("tracking", None), ("visualize", Path(scratch) / "d.mp4")):
            timing = time_calls(lambda d=drawn: tracking(d), repeats, units=frames)
            result[name] = {
                "frames_per_s": round(timing.per_second(), 1),
                "ms_per_frame": timing.ms(),
            }
        found = np.array(
            [np.reshape(r["keypoints"], (21, 3))[:, :2] for r in _read(out)]
        )[:, file_joints("coco")]
        error = np.linalg.norm(found + 0.5 - truth, axis=-1).mean()
    result["tracked_error_px"] = round(float(error), 3)
    result["settings"] = {
        "model": str(model),
        "frames": frames,
        "frame_size": "320 x 320",
        "repeats": repeats,
        "tta": False,
        "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    return result


def _read(path):
    import json

    return json.loads(Path(path).read_text())
