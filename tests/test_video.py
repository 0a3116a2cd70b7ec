"""Hands in a video: the synthetic video's joints, the crop rule read off training
crops, tracking from one box (with a predictor that knows the truth, so that only
the tracker is tested), detections per frame, and bad input."""

import json

import cv2
import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC, train_small_run

from data_pipeline import crop_rule
from data_pipeline.crop import biased_box
from data_pipeline.keypoints import CROP_SIZE
from data_pipeline.sources import parse_source
from data_pipeline.store import open_split
from data_pipeline.video import Motion, frames, synthetic_video, video_info
from hjr.cli import main
from hjr.inference import track
from hjr.inference.predictors import Predictor

HAND = 4  # a mid-sized synthetic hand


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "pan.mp4"
    return path, synthetic_video(path, count=40, hand=HAND, motion=Motion(period=100))


def test_the_synthetic_video_moves_its_hand_and_its_joints(video):
    path, truth = video
    info = video_info(path)
    assert (info.width, info.height, info.frames) == (320, 320, 40)
    keypoints = truth["keypoints"]
    steps = np.linalg.norm(np.diff(keypoints, axis=0), axis=-1).mean(-1)
    assert steps.min() > 0.5 and steps.max() < 12  # moving, and smoothly
    centres = [np.ptp(k, 0).max() for k in keypoints]
    assert max(centres) / min(centres) > 1.1  # growing and shrinking
    # The drawn hand is where its joints are: skin-coloured pixels under the wrist.
    for index, frame in frames(path):
        if index % 10:
            continue
        x, y = np.floor(keypoints[index, 0]).astype(int)
        patch = frame[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).astype(int)
        assert (patch[:, 0] > patch[:, 2]).mean() > 0.5  # skin: more red than blue


def test_the_crop_rule_comes_out_of_the_training_crops(data_dir):
    train = open_split(parse_source(SMALL_SYNTHETIC), "train", data_dir=data_dir)
    rule = crop_rule.learn(train.keypoints)
    assert 1.0 < rule.box_side < 1.6 and all(0.3 < c < 0.7 for c in rule.box_centre)
    assert 2.5 < rule.side < 5 and all(0 < c < 0.5 for c in rule.centre)
    # On the frames the crops came from, the rule's squares are the biased boxes to
    # within a few percent for most hands, from the joints' box or from the joints.
    from data_pipeline.synthetic import render_hand_with_visibility

    sides, shifts = [], []
    for index in train.id[:20]:
        image, keypoints, _ = render_hand_with_visibility(0, int(index))
        x0, y0, side = biased_box(keypoints, 320, 320)
        lo, hi = keypoints.min(0), keypoints.max(0)
        for square in (rule.square_of_box((*lo, *(hi - lo))), rule.square(keypoints)):
            sides.append(square[2] / side)
            shifts.append(np.hypot(square[0] - x0, square[1] - y0) / side)
    assert 0.9 < np.median(sides) < 1.1 and np.median(shifts) < 0.2
    again = crop_rule.CropRule.from_dict(rule.to_dict())
    assert again == rule
    # A model whose joints spread less than the labels gets larger squares from
    # them, so that its own joints give back the crop they came from.
    shrunk = 64 + (train.keypoints - 64) * 0.9
    biased = crop_rule.learn(train.keypoints, shrunk)
    assert biased.side == pytest.approx(rule.side / 0.9, rel=0.02)
    assert biased.box_side == rule.box_side


class Oracle(Predictor):
    """Knows each frame's joints: returns them in the crop it is given, located by
    the square the tracker cut (recorded by the patched cut_square)."""

    def __init__(self, truth, squares, noise=0.0, lose=()):
        self.truth, self.squares, self.frame = truth, squares, -1
        self.noise, self.lose = noise, set(lose)
        self.rng = np.random.default_rng(0)

    def joints(self, images, tta):
        self.frame += 1
        x0, y0, side = self.squares[-1]
        points = (self.truth[self.frame] - (x0, y0)) * CROP_SIZE / side
        points = points + self.rng.normal(0, self.noise, points.shape)
        scores = np.full((1, 21), 0.01 if self.frame in self.lose else 0.9)
        return points[None].astype(np.float32), scores


@pytest.fixture
def recorded(monkeypatch):
    squares = []
    real = track.cut_square

    def cut(frame, square, *args):
        squares.append(tuple(square))
        return real(frame, square, *args)

    monkeypatch.setattr(track, "cut_square", cut)
    return squares


RULE = crop_rule.CropRule(4.5, (0.0, 0.0), 1.2, (0.5, 0.5))


def test_tracking_follows_the_joints_it_finds(video, recorded):
    path, truth = video
    keypoints = truth["keypoints"]
    lo, hi = keypoints[0].min(0), keypoints[0].max(0)
    oracle = Oracle(keypoints, recorded)
    stream = track.track(oracle, path, RULE, box=(*lo, *(hi - lo)))
    found = [hands[0] for _, hands in stream]
    assert len(found) == 40
    assert [f.how for f in found] == ["given"] + ["tracked"] * 39
    assert not any(f.lost for f in found)
    assert found[0].square == RULE.square_of_box((*lo, *(hi - lo)))
    for n, hand in enumerate(found):
        np.testing.assert_allclose(hand.keypoints, keypoints[n], atol=1e-3)
        if n:  # each square: the rule's on the joints found in the frame before,
            # its centre moved on by the squares' damped motion
            rule = np.array(RULE.square(keypoints[n - 1]))
            assert hand.square[2] == pytest.approx(rule[2])
            assert np.hypot(*(np.array(hand.square[:2]) - rule[:2])) < 12
    # The hand stays inside its crop as it moves: every joint, every frame.
    inside = [
        ((k >= s[:2]) & (k <= np.add(s[:2], s[2]))).all()
        for k, s in zip(keypoints, (f.square for f in found))
    ]
    assert all(inside)


def test_squares_move_on_with_the_hands_motion():
    """A hand moving 3 px a frame: the next square is the rule's on this frame's
    joints moved on by the damped motion, soon one whole step ahead (the joints
    found are a frame old when the next frame is cut)."""
    motion, before = np.zeros(2), None
    for n in range(12):
        found = (3.0 * n, 1.0, 50.0)  # the rule's square on frame n's joints
        square, motion = track._next_square(before, found, motion)
        before = found
    assert motion == pytest.approx([3.0, 0.0], abs=0.01)
    assert square == pytest.approx((3.0 * 11 + 3.0, 1.0, 50.0), abs=0.01)
    still, _ = track._next_square(None, (5.0, 6.0, 40.0), np.zeros(2))
    assert still == (5.0, 6.0, 40.0)  # a start: no motion yet


def test_a_lost_hand_goes_back_to_the_given_box_or_a_detection(video, recorded):
    path, truth = video
    keypoints = truth["keypoints"]
    rule = RULE
    given = (10.0, 10.0, 50.0, 50.0)
    lo, hi = keypoints[20].min(0), keypoints[20].max(0)
    from data_pipeline.coco import Hand

    detected = Hand(0, 20, "frame 20", (*lo, *(hi - lo)), None, None, 1, 0, 0, 0.7)
    oracle = Oracle(keypoints, recorded, lose=(5, 19))
    found = [
        hands[0]
        for _, hands in track.track(
            oracle, path, rule, box=given, detections={20: [detected]}
        )
    ]
    assert [found[n].how for n in (5, 6, 7, 19, 20, 21)] == [
        "tracked", "given", "tracked", "tracked", "detected", "tracked",
    ]  # fmt: skip
    assert found[5].lost and found[19].lost and not found[6].lost
    assert found[6].square == rule.square_of_box(given)
    assert found[20].square == rule.square_of_box(detected.bbox)
    assert found[20].box_score == 0.7


BAD = [
    ("video:{missing}", "no such video file"),
    ("video:{broken},box=1,2,3,4", "not a video OpenCV can read"),
    ("video:{video},box=400,10,50,50", "box 400,10,50,50: expected a box"),
    ("video:{video},box=1,2,3", "expected box=X,Y,W,H"),
    ("video:{video}", "expected box=X,Y,W,H (the hand in the first frame"),
]


@pytest.mark.parametrize("spec, expected", BAD)
def test_bad_video_input_is_one_line(video, tmp_path, capsys, spec, expected):
    (tmp_path / "broken.mp4").write_text("not a video\n")
    (tmp_path / "run").mkdir()
    spec = spec.format(
        missing=tmp_path / "no.mp4", broken=tmp_path / "broken.mp4", video=video[0]
    )
    argv = ["predict", "--model", str(tmp_path / "run"), "--data", spec]
    assert main([*argv, "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err


def test_video_flags_are_checked(video, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    base = ["predict", "--model", str(tmp_path / "run")]
    spec = f"video:{video[0]},box=100,150,60,60"
    checks = [
        (["--out", str(tmp_path / "r.csv")], "COCO results: a .json"),
        (["--out", str(tmp_path / "r.json"), "--visualize", str(tmp_path / "d")],
         "a video file (.mp4"),
        (["--out", str(tmp_path / "r.json"), "--shift", "8"], "--shift 8.0: not with"),
        (["train", "--head", "fc", "--data", spec], "read by hjr predict and"),
    ]  # fmt: skip
    for extra, expected in checks:
        argv = extra if extra[0] == "train" else [*base, "--data", spec, *extra]
        assert main(argv) == 2, extra
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_predict_tracks_a_video_and_draws_it(video, tmp_path):
    """The command a user runs: a run, its video tracked from one box and found by
    detections, COCO results per frame, the annotated video."""
    path, truth = video
    run = train_small_run(tmp_path / "run", tmp_path / "prepared", head="offsets")
    keypoints = truth["keypoints"]
    lo, hi = keypoints[0].min(0), keypoints[0].max(0)
    box = ",".join(f"{v:.2f}" for v in (*lo, *(hi - lo)))
    out, drawn = tmp_path / "tracked.json", tmp_path / "tracked.mp4"
    where = ["--data-dir", str(tmp_path / "prepared"), "--no-tta"]
    argv = ["predict", "--model", str(run), "--data", f"video:{path},box={box}"]
    assert main([*argv, *where, "--out", str(out), "--visualize", str(drawn)]) == 0
    results = json.loads(out.read_text())
    assert [r["image_id"] for r in results] == list(range(40))
    assert results[0]["crop"] == "given"
    for entry in results:
        joint_scores = np.reshape(entry["keypoints"], (21, 3))[:, 2]
        assert ((joint_scores > 0) & (joint_scores <= 1)).all()
    info = video_info(drawn)
    assert (info.width, info.height, info.frames) == (320, 320, 40)
    originals = dict(frames(path))
    changed = [(f != originals[i]).any(-1).mean() for i, f in frames(drawn)]
    assert min(changed) > 0.01  # every frame drawn on
    # Detections in every other frame: those frames' hands, no others.
    found = [
        {
            "image_id": t,
            "category_id": 1,
            "bbox": [*k.min(0), *np.ptp(k, 0)],
            "score": 0.9,
        }
        for t, k in enumerate(keypoints)
        if t % 2 == 0
    ]
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps(found))
    argv[-1] = f"video:{path},boxes={detections}"
    assert main([*argv, *where, "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["image_id"] for r in results] == list(range(0, 40, 2))
    assert {r["crop"] for r in results} == {"detected"}


@pytest.mark.slow
def test_browse_writes_a_videos_crops(video, tmp_path):
    path, truth = video
    box = "100,150,60,60"
    argv = ["browse", "--data", f"video:{path},box={box}", "--num", "5"]
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    crops = sorted((tmp_path / "b").glob("0*.png"))
    assert [p.name for p in crops] == [f"{n:05d}_0.png" for n in range(5)]
    assert cv2.imread(str(crops[0])).shape == (128, 128, 3)


@pytest.mark.slow
def test_bench_times_tracking_with_and_without_the_drawn_video(tmp_path, capsys):
    run = train_small_run(tmp_path / "run", tmp_path / "prepared")
    argv = ["bench", "--tracking", str(run), "--frames", "12", "--repeats", "1"]
    where = [
        "--data-dir",
        str(tmp_path / "prepared"),
        "--json",
        str(tmp_path / "b.json"),
    ]
    assert main([*argv, *where]) == 0
    result = json.loads((tmp_path / "b.json").read_text())
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{\n") :]) == result  # after any preparing
    for mode in ("tracking", "visualize"):
        assert result[mode]["frames_per_s"] > 0
        assert len(result[mode]["ms_per_frame"]["runs"]) == 1
    assert result["tracked_error_px"] >= 0 and result["settings"]["frames"] == 12
