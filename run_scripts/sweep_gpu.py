"""Training runs on the synthetic hands where only Keras, JAX (or PyTorch), NumPy and
OpenCV are installed: how a setting's validation error goes with its steps, on a GPU.

    python run_scripts/sweep_gpu.py render DATA.npz [--train 10000] [--validation 480]
    python run_scripts/sweep_gpu.py train DATA.npz RESULT.json [--preset quick]
        [--head fc] [--set KEY=VALUE ...]

`render` makes the synthetic source's train and validation crops as `hjr prepare`
does (the same renderer, hold-out and biased crop) and prints the mean predictor's
validation kaggle_mse, which tells the data apart: 1630.4 for the default 10,000
training and 480 validation crops.

`train` trains one configuration, hjr.config.configure(preset, {head, KEY: VALUE}),
with hjr's own training step (hjr.training.step.build_trainer: the augmentation on the
device, the head's loss, the optimizer and its schedule). Only the input differs
from `hjr train`: batches drawn from the arrays in memory, shuffled each epoch, with
uniform augmentation draws, instead of the tf.data pipeline's. RESULT.json is
written at each validation (validation kaggle_mse and mean joint error without TTA,
visible and hidden joints apart) and at the end with the paper's 4-rotation TTA.

run_scripts/sweep_gpu.sh runs several of them at once on one GPU.
"""

import argparse
import json
import os
import time
from multiprocessing import Pool

import numpy as np

SCORE_BATCH = 120  # validation crops per prediction call


def _render_one(index):
    from data_pipeline.crop import crop_hand
    from data_pipeline.synthetic import render_hand_with_visibility

    image, keypoints, visible = render_hand_with_visibility(0, int(index))
    patch, local = crop_hand(image, keypoints, "biased")
    return patch, local, visible


def render(out, num_train, num_validation):
    """The synthetic source (seed 0, split seed 0, biased crop) as arrays in `out`."""
    from data_pipeline.splits import hold_out

    started = time.monotonic()
    splits = hold_out(num_train + num_validation, num_validation, 0, "synthetic")
    arrays = {}
    with Pool(os.cpu_count()) as pool:
        for name, ids in zip(("train", "validation"), splits):
            parts = pool.map(_render_one, ids, chunksize=64)
            arrays[f"{name}_ids"] = ids
            for column, key in enumerate(("images", "keypoints", "visible")):
                arrays[f"{name}_{key}"] = np.stack([part[column] for part in parts])
    tmp = f"{out}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    mean = arrays["train_keypoints"].mean(axis=0)
    score = ((arrays["validation_keypoints"] - mean) ** 2).sum(-1).mean()
    print(
        f"sweep_gpu: {out}: {len(splits[0])} training and {len(splits[1])} validation "
        f"crops in {time.monotonic() - started:.0f} s; the mean predictor scores "
        f"validation kaggle_mse {score:.1f}"
    )


def _scores(predicted, keypoints, visible) -> dict:
    squared = ((predicted - keypoints) ** 2).sum(-1)
    distance = np.sqrt(squared)
    scores = {"kaggle_mse": squared.mean(), "mean_joint_distance": distance.mean()}
    for name, mask in (("visible", visible), ("hidden", ~visible)):
        if mask.any():
            scores[f"kaggle_mse_{name}"] = squared[mask].mean()
            scores[f"mean_joint_distance_{name}"] = distance[mask].mean()
    return {key: round(float(value), 3) for key, value in scores.items()}


def train(data, result_path, preset, head, settings):
    import keras

    from hjr.config import configure
    from hjr.core.augment import NUM_DRAWS
    from hjr.inference.predictors import NetworkPredictor
    from hjr.training.distribute import make_strategy
    from hjr.training.step import build_trainer, schedule

    arrays = np.load(data)
    images, keypoints = arrays["train_images"], arrays["train_keypoints"]
    validation = [arrays[f"validation_{k}"] for k in ("images", "keypoints", "visible")]
    conf = configure(preset, {"head": head, **settings})
    every, total = schedule(conf)
    batch = conf["batch_size"]
    net, trainer = build_trainer(conf, make_strategy(conf["strategy"]))
    predictor = NetworkPredictor(net)
    result = {"data": str(data), "conf": conf, "backend": keras.backend.backend()}
    result["validation"] = []
    started = time.monotonic()

    def save():
        result["seconds"] = round(time.monotonic() - started, 1)
        tmp = f"{result_path}.tmp"
        with open(tmp, "w") as file:
            json.dump(result, file, indent=1)
        os.replace(tmp, result_path)

    def score(tta):
        # In parts: with 21 runs on one GPU, all 4 x 480 turned crops at once failed.
        parts = range(0, len(validation[0]), SCORE_BATCH)
        images = (validation[0][start : start + SCORE_BATCH] for start in parts)
        predicted = np.concatenate([predictor.keypoints(x, tta=tta) for x in images])
        return _scores(predicted, *validation[1:])

    class Validate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            step = min(total, (epoch + 1) * every)
            entry = {"step": step, **score(False), "train_loss": logs.get("loss")}
            result["validation"].append(entry)
            save()
            print(f"sweep_gpu: {result_path}: {json.dumps(entry)}", flush=True)

    def batches():
        rng = np.random.default_rng(conf["seed"])
        while True:
            order = rng.permutation(len(images))
            for start in range(0, len(order) - batch + 1, batch):
                pick = np.sort(order[start : start + batch])
                draws = rng.uniform(size=(batch, NUM_DRAWS)).astype(np.float32)
                yield (
                    {
                        "images": images[pick],
                        "keypoints": keypoints[pick],
                        "draws": draws,
                    },
                )

    trainer.fit(
        batches(),
        steps_per_epoch=every,
        epochs=-(-total // every),
        callbacks=[Validate()],
        shuffle=False,
        verbose=0,
    )
    result["tta"] = score(True)
    save()
    print(f"sweep_gpu: {result_path}: with TTA {json.dumps(result['tta'])}")


def _setting(text):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("render", help="the synthetic crops as arrays")
    make.add_argument("out")
    make.add_argument("--train", type=int, default=10000)
    make.add_argument("--validation", type=int, default=480)
    fit = commands.add_parser("train", help="train and score one configuration")
    fit.add_argument("data")
    fit.add_argument("result")
    fit.add_argument("--preset", default="quick")
    fit.add_argument("--head", default="fc")
    fit.add_argument("--set", type=_setting, nargs="*", default=[], dest="settings")
    args = parser.parse_args(argv)
    from data_pipeline.errors import UserError
    from hjr.quiet import start_tensorflow, verbose_from_env

    start_tensorflow(verbose_from_env())  # where installed, without its noise

    try:
        if args.command == "render":
            render(args.out, args.train, args.validation)
        else:
            train(args.data, args.result, args.preset, args.head, dict(args.settings))
    except UserError as error:
        parser.exit(2, f"sweep_gpu: error: {error}\n")


if __name__ == "__main__":
    main()
