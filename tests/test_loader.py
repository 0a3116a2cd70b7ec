"""The NumPy loader (data_pipeline.loader) and the store it reads
(data_pipeline.store): training batch `step` is a function of (seed, step) alone,
the tf.data pipeline serves the very same batches, a prepared source appears only
complete, is reused, and opens without TensorFlow; the TFDS builders give what the
store holds."""

import dataclasses
import itertools
import json

import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC, run_python

from data_pipeline import examples, loader, store
from data_pipeline.errors import UserError
from data_pipeline.sources import parse_source

SEED = 3
BATCH = 12  # 40 training samples: batches straddle the epochs
KEYS = ("image", "keypoints", "visible", "id")


@pytest.fixture
def train(data_dir):
    return store.open_split(parse_source(SMALL_SYNTHETIC), "train", data_dir=data_dir)


def assert_same_batch(got, want, keys=(*KEYS, "draws"), what=""):
    assert sorted(got) == sorted(keys), what
    for key in keys:
        got_value = np.asarray(got[key])
        assert got_value.dtype == want[key].dtype, (what, key)
        np.testing.assert_array_equal(got_value, want[key], err_msg=f"{what} {key}")


def stream_of_epochs(count, seed, epochs):
    """The documented stream: each pass a permutation of default_rng((seed, e))."""
    return np.concatenate(
        [np.random.default_rng((seed, e)).permutation(count) for e in range(epochs)]
    )


# ------------------------------------------------------------------ the loader


def test_training_batches_are_a_function_of_seed_and_step(train):
    """Rows of the endless stream of seeded permutations, the draws of
    default_rng((seed, step, 1)), whatever was asked before."""
    assert len(train) == 40
    stream = stream_of_epochs(len(train), SEED, 4)
    for step in (7, 0, 3, 4, 9, 1):  # any order: no state between batches
        batch = loader.train_batch(train, SEED, step, BATCH)
        rows = stream[step * BATCH : (step + 1) * BATCH]
        assert batch["image"].shape == (BATCH, 128, 128, 3)
        assert batch["image"].dtype == np.uint8
        assert batch["keypoints"].shape == (BATCH, 21, 2)
        assert batch["keypoints"].dtype == np.float32
        assert batch["visible"].shape == (BATCH, 21) and batch["visible"].dtype == bool
        assert batch["id"].dtype == np.int64
        assert batch["draws"].shape == (BATCH, loader.NUM_DRAWS)
        assert batch["draws"].dtype == np.float32
        for key in KEYS:
            np.testing.assert_array_equal(batch[key], getattr(train, key)[rows])
        draws = np.random.default_rng((SEED, step, 1)).random((BATCH, 4), np.float32)
        np.testing.assert_array_equal(batch["draws"], draws)
        again = loader.train_batch(train, SEED, step, BATCH)
        assert_same_batch(again, batch, what=f"step {step} again")


def test_each_epoch_is_a_permutation_of_the_split(train):
    steps = 10  # 120 samples: three epochs of 40
    ids = np.concatenate(
        [loader.train_batch(train, SEED, step, BATCH)["id"] for step in range(steps)]
    )
    epochs = ids.reshape(3, 40)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == sorted(train.id.tolist())
    assert len({tuple(epoch) for epoch in epochs}) == 3  # a new order each pass
    assert epochs[0].tolist() != sorted(epochs[0].tolist())  # shuffled
    other = np.concatenate(
        [loader.train_batch(train, SEED + 1, step, BATCH)["id"] for step in range(4)]
    )
    assert other[:40].tolist() != epochs[0].tolist()  # another seed, another order
    assert sorted(other[:40].tolist()) == sorted(train.id.tolist())
    draws = loader.train_batch(train, SEED + 1, 0, BATCH)["draws"]
    assert not np.isclose(draws, loader.batch_draws(SEED, 0, BATCH)).any()


def test_threaded_batches_are_the_batches_in_order(train):
    for workers in (1, 2, 3):
        made = list(loader.train_batches(train, SEED, BATCH, 2, 11, workers=workers))
        assert len(made) == 9, workers
        for step, batch in zip(range(2, 11), made):
            want = loader.train_batch(train, SEED, step, BATCH)
            assert_same_batch(batch, want, what=f"{workers} workers, step {step}")
    endless = loader.train_batches(train, SEED, BATCH, start=5, workers=2)
    first = list(itertools.islice(endless, 4))
    endless.close()
    for step, batch in zip(range(5, 9), first):
        assert_same_batch(batch, loader.train_batch(train, SEED, step, BATCH))


def test_evaluation_batches_read_each_sample_once_in_storage_order(train):
    batches = list(loader.eval_batches(train, BATCH))
    assert loader.num_batches(train, BATCH) == len(batches) == 4
    assert [len(b["id"]) for b in batches] == [12, 12, 12, 4]
    for key in KEYS:
        whole = np.concatenate([b[key] for b in batches])
        np.testing.assert_array_equal(whole, getattr(train, key))
    assert "draws" not in batches[0]


def test_an_empty_split_is_refused_for_training(train):
    empty = dataclasses.replace(
        train,
        image=train.image[:0],
        keypoints=train.keypoints[:0],
        visible=train.visible[:0],
        id=train.id[:0],
    )
    with pytest.raises(UserError, match="no train samples to train on"):
        loader.train_batch(empty, SEED, 0, BATCH)


def test_positions_and_rows_gather_by_id(train):
    ids = train.id[[5, 0, 39, 5]]
    rows = train.positions(ids)
    assert rows.tolist() == [5, 0, 39, 5]
    picked = train.rows(rows, ("id", "keypoints"))
    assert sorted(picked) == ["id", "keypoints"]
    np.testing.assert_array_equal(picked["id"], ids)
    np.testing.assert_array_equal(picked["keypoints"], train.keypoints[[5, 0, 39, 5]])
    missing = int(train.id.max()) + 1
    with pytest.raises(UserError, match=f"no sample with id {missing}"):
        train.positions([int(train.id[0]), missing])


# ------------------------------------------------------ both loaders, the same


def test_tf_data_serves_the_loaders_training_batches(data_dir, train):
    from data_pipeline.pipeline import make_dataset

    source = parse_source(SMALL_SYNTHETIC)
    steps = 9  # 108 samples: beyond two epochs of 40
    dataset = make_dataset(
        source, "train", BATCH, training=True, seed=SEED, data_dir=data_dir
    )
    for step, batch in enumerate(dataset.take(steps)):
        got = {key: value.numpy() for key, value in batch.items()}
        want = loader.train_batch(train, SEED, step, BATCH)
        assert_same_batch(got, want, what=f"step {step}")
    assert step == steps - 1
    resumed = make_dataset(
        source, "train", BATCH, training=True, seed=SEED, data_dir=data_dir, start=7
    )
    for step, batch in zip(range(7, 10), resumed.take(3)):
        got = {key: value.numpy() for key, value in batch.items()}
        want = loader.train_batch(train, SEED, step, BATCH)
        assert_same_batch(got, want, what=f"resumed, step {step}")
    other = make_dataset(
        source, "train", BATCH, training=True, seed=SEED + 1, data_dir=data_dir
    )
    other_ids = next(iter(other))["id"].numpy()
    assert (
        other_ids.tolist() != loader.train_batch(train, SEED, 0, BATCH)["id"].tolist()
    )


def test_both_loaders_serve_the_same_jittered_batches(data_dir):
    """A box jitter is a parameter of the loader's calls: tf.data and the threads
    give train_batch's batches with it, the plain batches' rows and draws with
    their boxes moved; a split opened without its surroundings refuses it."""
    from data_pipeline.pipeline import make_dataset

    source = parse_source(SMALL_SYNTHETIC)
    jitter = (16.0, 1.25)
    train = store.open_split(source, "train", data_dir=data_dir, context=True)
    dataset = make_dataset(
        source, "train", BATCH, True, SEED, data_dir=data_dir, jitter=jitter
    )
    threaded = loader.train_batches(train, SEED, BATCH, 0, 4, workers=2, jitter=jitter)
    for step, (batch, made) in enumerate(zip(dataset.take(4), threaded)):
        want = loader.train_batch(train, SEED, step, BATCH, jitter)
        got = {key: value.numpy() for key, value in batch.items()}
        assert_same_batch(got, want, what=f"tf.data, step {step}")
        assert_same_batch(made, want, what=f"threads, step {step}")
        plain = loader.train_batch(train, SEED, step, BATCH)
        for key in ("id", "visible", "draws"):
            np.testing.assert_array_equal(want[key], plain[key])
        assert not np.array_equal(want["image"], plain["image"])
    assert step == 3
    unopened = store.open_split(source, "train", data_dir=data_dir)
    with pytest.raises(ValueError, match="surroundings"):
        loader.train_batch(unopened, SEED, 0, BATCH, jitter)


def test_the_surroundings_are_the_frames_pixels_about_each_box(data_dir):
    """Stored once, beside the crops, nothing else left behind: each sample's
    slice of its 320 x 320 frame at the frame's resolution (step 1), holding the
    square of twice its box's side about the box's centre, clipped to the
    frame."""
    source = parse_source(SMALL_SYNTHETIC)
    train = store.open_split(source, "train", data_dir=data_dir, context=True)
    folder = store.folder_for(source, data_dir=data_dir)
    names = sorted(p.name for p in folder.iterdir() if p.name.startswith("train."))
    stored = ["train.surroundings.npy", "train.surroundings.u8"]
    assert names == sorted(
        [*stored, *(f"train.{k}.npy" for k in store.LABELS)] + ["train.image.u8"]
    )
    index = train.context.index
    offset, height, width, x, y, step = index[:, :6].T
    x0, y0, side = train.context.boxes.T
    assert (step == 1).all() and len(index) == len(train)
    np.testing.assert_array_equal(offset[1:], np.cumsum(height * width * 3)[:-1])
    assert (x <= np.maximum(x0 - side / 2, 0)).all()
    assert (y <= np.maximum(y0 - side / 2, 0)).all()
    assert (x + width >= np.minimum(x0 + 1.5 * side, 320)).all()
    assert (y + height >= np.minimum(y0 + 1.5 * side, 320)).all()
    assert (x + width <= 320).all() and (y + height <= 320).all()
    again = store.open_split(source, "train", data_dir=data_dir, context=True)
    np.testing.assert_array_equal(again.context.index, index)


def test_tf_data_serves_the_loaders_evaluation_batches(data_dir):
    from data_pipeline.pipeline import make_dataset

    source = parse_source(SMALL_SYNTHETIC)
    for split in ("train", "validation", "test"):
        prepared = store.open_split(source, split, data_dir=data_dir)
        want = list(loader.eval_batches(prepared, BATCH))
        got = list(make_dataset(source, split, BATCH, data_dir=data_dir))
        assert len(got) == len(want) == loader.num_batches(prepared, BATCH), split
        for index, (batch, expected) in enumerate(zip(got, want)):
            batch = {key: value.numpy() for key, value in batch.items()}
            assert_same_batch(batch, expected, KEYS, f"{split} batch {index}")


# ------------------------------------------------------------------- the store


def test_a_failed_preparation_leaves_nothing_behind(data_dir, monkeypatch):
    source = parse_source(SMALL_SYNTHETIC)
    folder = store.folder_for(source, data_dir=data_dir)
    real_plan = examples.plan

    def failing(kind, path, prep):
        splits, metadata = real_plan(kind, path, prep)

        def broken():
            for n, sample in enumerate(splits["validation"]()):
                if n == 5:
                    raise KeyboardInterrupt  # Ctrl-C half-way through a split
                yield sample

        return {**splits, "validation": broken}, metadata

    monkeypatch.setattr(store, "plan", failing)
    with pytest.raises(KeyboardInterrupt):
        store.prepare(source, data_dir=data_dir)
    assert not folder.exists()
    assert list(folder.parent.iterdir()) == []  # no temporary folder left either
    with pytest.raises(KeyboardInterrupt):
        store.open_split(source, "train", data_dir=data_dir)
    assert not folder.exists()


def test_the_folder_appears_complete_and_is_reused(data_dir, monkeypatch, capsys):
    source = parse_source(SMALL_SYNTHETIC)
    folder = store.folder_for(source, data_dir=data_dir)
    real_plan = examples.plan
    seen = []

    def watched(kind, path, prep):
        splits, metadata = real_plan(kind, path, prep)

        def watching(name, samples):
            for sample in samples():
                seen.append((name, folder.exists()))
                yield sample

        named = {
            name: (lambda name=name, samples=samples: watching(name, samples))
            for name, samples in splits.items()
        }
        return named, metadata

    monkeypatch.setattr(store, "plan", watched)
    info = store.prepare(source, data_dir=data_dir)
    assert len(seen) == 56 and not any(exists for _, exists in seen)
    assert {name for name, _ in seen} == {"train", "validation", "test"}
    assert info["splits"] == {"train": 40, "validation": 8, "test": 8}
    assert json.loads((folder / "info.json").read_text()) == info
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp left
    files = {
        f"{split}.{field}"
        for split in info["splits"]
        for field in ("image.u8", "keypoints.npy", "visible.npy", "id.npy")
    }
    assert {p.name for p in folder.iterdir()} == files | {"info.json"}
    assert (folder / "train.image.u8").stat().st_size == 40 * 128 * 128 * 3
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert "preparing" in capsys.readouterr().out

    def refuse(*args):
        raise AssertionError("prepared again")

    monkeypatch.setattr(store, "plan", refuse)
    monkeypatch.setattr(examples, "plan", refuse)
    assert store.prepare(source, data_dir=data_dir) == info
    prepared = store.open_split(source, "validation", data_dir=data_dir)
    assert len(prepared) == 8 and isinstance(prepared.image, np.memmap)
    assert "preparing" not in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written
    # another crop mode is another preparation, in its own folder
    centered = store.folder_for(source, "centered", data_dir=data_dir)
    assert centered != folder and centered.parent == folder.parent
    with pytest.raises(AssertionError, match="prepared again"):
        store.prepare(source, "centered", data_dir=data_dir)
    assert not centered.exists()


def test_bad_split_names_are_refused_before_preparing(data_dir):
    source = parse_source(SMALL_SYNTHETIC)
    with pytest.raises(UserError, match="expected one of train, validation, test"):
        store.open_split(source, "dev", data_dir=data_dir)
    assert not (data_dir / "hjr-prepared").exists()  # refused before preparing


BLOCKED_TENSORFLOW = """
import json, sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Blocked())
from data_pipeline import loader, store
from data_pipeline.sources import parse_source

source, data_dir, seed = parse_source(sys.argv[1]), sys.argv[2], int(sys.argv[3])
split = store.open_split(source, "train", data_dir=data_dir)
batch = loader.train_batch(split, seed, 4, 12)
test = loader.read_split(source, "test", ("id", "keypoints"), data_dir=data_dir)
try:
    import tensorflow
except ImportError:
    blocked = True
else:
    blocked = False
print(json.dumps({
    "blocked": blocked,
    "loaded": sorted(
        {m.split(".")[0] for m in sys.modules}
        & {"tensorflow", "tensorflow_datasets", "keras"}
    ),
    "count": len(split),
    "ids": batch["id"].tolist(),
    "image_sum": int(batch["image"].astype("int64").sum()),
    "draws": batch["draws"].tolist(),
    "test_ids": test["id"].tolist(),
    "test_keypoints": test["keypoints"].tolist(),
}))
"""


@pytest.mark.slow
def test_the_store_needs_no_tensorflow(data_dir, train):
    """A fresh interpreter where TensorFlow and TensorFlow Datasets cannot be
    imported opens the prepared split (and prepares the synthetic source itself in
    a data dir of its own) and makes the same batch."""
    for where in (data_dir, data_dir.parent / "fresh"):
        proc = run_python(BLOCKED_TENSORFLOW, SMALL_SYNTHETIC, where, SEED)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["blocked"] is True and out["loaded"] == []
        assert out["count"] == len(train) == 40
        want = loader.train_batch(train, SEED, 4, 12)
        assert out["ids"] == want["id"].tolist()
        assert out["image_sum"] == int(want["image"].astype(np.int64).sum())
        assert out["draws"] == want["draws"].tolist()
        source = parse_source(SMALL_SYNTHETIC)
        test = loader.read_split(source, "test", ("id", "keypoints"), data_dir=data_dir)
        assert out["test_ids"] == test["id"].tolist() == list(range(8))
        np.testing.assert_array_equal(out["test_keypoints"], test["keypoints"])
    assert store.folder_for(parse_source(SMALL_SYNTHETIC), data_dir=where).is_dir()


# ------------------------------------------------------- the TFDS builders


def test_tfds_builder_gives_what_the_store_holds(tmp_path, data_dir):
    """`tfds build`-style use of HjrSynthetic: the same crops, keypoints, visibility
    and ids per split as hjr's own preparation, and the same metadata."""
    import tensorflow_datasets as tfds

    from data_pipeline.tfds_builders import HandConfig, HjrSynthetic

    spec = "synthetic:train=12,validation=4,test=4,seed=2"
    config = HandConfig(
        name="small_centered",
        crop="centered",
        num_train=12,
        num_validation=4,
        num_test=4,
        seed=2,
    )
    builder = HjrSynthetic(config=config, data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    source = parse_source(spec)
    info = store.prepare(source, "centered", data_dir)
    assert {name: s.num_examples for name, s in builder.info.splits.items()} == (
        info["splits"]
    )
    assert builder.info.metadata["num_validation"] == 4
    assert tuple(builder.LABELLED_SPLITS) == tuple(info["labelled"])
    assert builder.HAS_VISIBILITY is info["has_visibility"] is True
    for split in ("train", "validation", "test"):
        built = list(tfds.as_numpy(builder.as_dataset(split=split)))
        built.sort(key=lambda sample: int(sample["id"]))
        prepared = loader.read_split(
            source, split, KEYS, crop="centered", data_dir=data_dir
        )
        assert [int(s["id"]) for s in built] == prepared["id"].tolist(), split
        for key in KEYS:
            np.testing.assert_array_equal(
                np.stack([s[key] for s in built]), prepared[key], err_msg=split
            )
    # the test split is cut with the biased crop, whatever the config's crop
    test = loader.read_split(source, "test", ("image",), data_dir=data_dir)
    train = loader.read_split(source, "train", ("image",), data_dir=data_dir)
    built = {
        split: sorted(
            tfds.as_numpy(builder.as_dataset(split=split)), key=lambda s: int(s["id"])
        )
        for split in ("train", "test")
    }
    np.testing.assert_array_equal(
        np.stack([s["image"] for s in built["test"]]), test["image"]
    )
    assert not np.array_equal(
        np.stack([s["image"] for s in built["train"]]), train["image"]
    )
