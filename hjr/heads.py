"""The decoder heads of the paper, one `HEADS` entry each.

A head is everything hjr needs to build, train and describe it:
- `outputs(features, conf)`: the head on the encoder's feature map, returning
  {"keypoints": float32 [B, 21, 2]} and, for the map heads, {"maps": float32
  [B, S, S, 21]} (probabilities for `classification`, raw scores for `scoremap`);
- `target(keypoints, size, conf)`: the label maps its loss compares with `maps`,
  encoded from keypoints on the device (hjr.codec), or None: the keypoints;
- `loss(labels, outputs)`: the training loss, a scalar;
- `defaults`: the head's own settings in a run's configuration;
- `summary`: one line for `--help`.
The CLI, `hjr bench` and the tests take the list of heads from here. Importing
this module does not start TensorFlow (the CLI checks `--head` before any work):
each function imports what it computes with.
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

from data_pipeline.keypoints import NUM_JOINTS


@dataclass(frozen=True)
class Head:
    summary: str
    outputs: Callable
    loss: Callable
    target: Optional[Callable] = None
    defaults: dict = field(default_factory=dict)


def fc_outputs(features, conf):
    """Flatten, a dense layer with 42 linear units, reshaped to [21, 2]."""
    import keras

    flat = keras.layers.Flatten(name="fc_flatten")(features)
    dense = keras.layers.Dense(2 * NUM_JOINTS, name="fc_dense", dtype="float32")(flat)
    return {"keypoints": keras.layers.Reshape((NUM_JOINTS, 2), name="keypoints")(dense)}


def _map_outputs(activation):
    def outputs(features, conf):
        """Bilinear upsampling to the input resolution, a 5x5 convolution to 21
        maps, `activation`; keypoints by soft-argmax. head_layout "fast" computes
        the first two as one UpsampledConv, "plain" as the paper draws them
        (UpSampling2D then Conv2D): same weights, same outputs."""
        import keras

        from .layers import Expectation, UpsampledConv

        factor = conf["input_size"] // features.shape[1]
        if conf["head_layout"] == "plain":
            up = keras.layers.UpSampling2D(
                factor, interpolation="bilinear", name="upsample"
            )(features)
            conv = keras.layers.Conv2D(NUM_JOINTS, 5, padding="same", name="map_conv")
            logits = conv(up)
        else:
            logits = UpsampledConv(NUM_JOINTS, 5, factor, name="map_conv")(features)
        maps = keras.layers.Activation(activation, dtype="float32", name="maps")
        maps = maps(logits)
        return {"keypoints": Expectation(name="keypoints")(maps), "maps": maps}

    return outputs


def joint_mse(keypoints, outputs):
    """The mean squared joint distance (kaggle_mse) of the predicted keypoints."""
    from keras import ops

    from .metrics import kaggle_mse

    return ops.mean(kaggle_mse(keypoints, outputs["keypoints"]))


def disk_targets(keypoints, size, conf):
    from . import codec

    return codec.disk_maps(keypoints, size, conf["radius"])


def gaussian_targets(keypoints, size, conf):
    from . import codec

    return codec.gaussian_maps(keypoints, size, conf["sigma2"])


def pixel_crossentropy(maps, outputs):
    """Per-pixel binary cross-entropy of the predicted probabilities."""
    import keras

    probabilities = outputs["maps"]
    pixels = keras.losses.binary_crossentropy(maps[..., None], probabilities[..., None])
    return keras.ops.mean(pixels)


def pixel_l2(maps, outputs):
    """Mean squared difference of the predicted and the target maps."""
    from keras import ops

    return ops.mean(ops.square(outputs["maps"] - maps))


HEADS = {
    "fc": Head(
        summary="a dense layer regressing the 42 coordinates",
        outputs=fc_outputs,
        loss=joint_mse,
    ),
    "classification": Head(
        summary="per-pixel classification of disks around each joint",
        outputs=_map_outputs("sigmoid"),
        target=disk_targets,
        loss=pixel_crossentropy,
        defaults={"radius": 16.0},  # disk radius, crop pixels
    ),
    "scoremap": Head(
        summary="L2 regression of Gaussian score maps around each joint",
        outputs=_map_outputs("linear"),
        target=gaussian_targets,
        loss=pixel_l2,
        defaults={"sigma2": 100.0},  # variance of the Gaussians, crop pixels^2
    ),
}
