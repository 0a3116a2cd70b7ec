"""The decoder heads, one `HEADS` entry each: the paper's three and `offsets`.

A head is everything hjr needs to build, train and describe it:
- `outputs(features, conf)`: the head on the encoder's feature map, returning
  {"keypoints": float32 [B, 21, 2]} and, for the map heads, {"maps": float32
  [B, s, s, 21]} (probabilities for `classification` and `offsets`, raw scores for
  `scoremap`; s = 128 / map_stride) and for `offsets` {"offsets": float32
  [B, s, s, 21, 2]};
- `target(keypoints, size, conf)`: the labels its loss compares with, encoded from
  keypoints (crop pixels) at map side `size` on the device (hjr.core.codec), a dict; or
  None: the loss takes the keypoints alone;
- `loss(labels, outputs, conf)`: the training loss, a scalar; labels hold
  "keypoints", "labelled" (float32 [B, 21], 1 where the joint has a label; where
  absent, taken from the keypoints) and what `target` made. Every loss averages over
  labelled joints only (maps: the pixels of their channels); hjr.core.model.head_loss
  sets unlabelled (NaN) keypoints to 0 before `target` sees them;
- `defaults`: the head's own settings in a run's configuration, with their
  defaults (declared in hjr.config.HEAD_DEFAULTS, with every other setting);
- `summary`: one line for `--help`.
The map heads' shared settings: `map_stride`, the input pixels per map pixel (1,
the paper's: maps at the input's resolution; 4: a quarter of it, 16 times fewer
pixels), and `integral`, the weight of the soft-argmax keypoints' mean joint
distance (px) added to the map loss (integral regression; 0 in the paper).
The CLI, `hjr bench` and the tests take the list of heads from here. Importing
this module does not start TensorFlow (the CLI checks `--head` before any work):
each function imports what it computes with.
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

from data_pipeline.keypoints import CROP_SIZE, NUM_JOINTS
from hjr.config import HEAD_DEFAULTS


@dataclass(frozen=True)
class Head:
    summary: str
    outputs: Callable
    loss: Callable
    target: Optional[Callable] = None
    defaults: dict = field(default_factory=dict)


def fc_outputs(features, conf):
    """Flatten, a dense layer with 42 linear units, reshaped to [21, 2]. With
    `centred`, its bias starts at the image centre, else at 0: far from
    every joint, and the bias alone needs about 64 / lr optimizer
    steps to get there."""
    import keras

    bias = CROP_SIZE / 2.0 if conf["centred"] else 0.0
    flat = keras.layers.Flatten(name="fc_flatten")(features)
    dense = keras.layers.Dense(
        2 * NUM_JOINTS,
        bias_initializer=keras.initializers.Constant(bias),
        name="fc_dense",
        dtype="float32",
    )(flat)
    keypoints = keras.layers.Reshape((NUM_JOINTS, 2), dtype="float32", name="keypoints")
    return {"keypoints": keypoints(dense)}


def _map_logits(features, conf, channels):
    """`channels` maps of side 128 / map_stride: bilinear upsampling of the
    features to that side, then a 5x5 convolution, computed as one UpsampledConv
    (the same weights and outputs as UpSampling2D then Conv2D, as the paper draws
    them, far cheaper). Features already at the maps' side (the *_unet backbones
    at map_stride 4, whose decoder upsampled and mixed them) take a 1x1
    convolution."""
    import keras

    from hjr.core.layers import UpsampledConv

    factor = CROP_SIZE // conf["map_stride"] // features.shape[1]
    if factor == 1:
        return keras.layers.Conv2D(channels, 1, name="map_conv")(features)
    return UpsampledConv(channels, 5, factor, name="map_conv")(features)


def _map_outputs(activation):
    def outputs(features, conf):
        """Maps (_map_logits, then `activation`); keypoints by soft-argmax, in
        input pixels."""
        import keras

        from hjr.core.layers import Expectation

        logits = _map_logits(features, conf, NUM_JOINTS)
        maps = keras.layers.Activation(activation, dtype="float32", name="maps")
        maps = maps(logits)
        stride = CROP_SIZE / maps.shape[1]  # input pixels per map pixel
        keypoints = Expectation(stride, name="keypoints")(maps)
        return {"keypoints": keypoints, "maps": maps}

    return outputs


def offsets_outputs(features, conf):
    """Per map pixel (_map_logits, 3 x 21 channels): the probability that a joint
    lies within `radius` of the pixel (sigmoid) and the joint's offset from the
    pixel centre in units of `radius`; keypoints: every pixel votes for its centre
    plus its offset, weighted by its probability squared (hjr.core.codec.vote), in
    input pixels."""
    import keras

    from hjr.core.layers import OffsetVote

    logits = _map_logits(features, conf, 3 * NUM_JOINTS)
    logits = keras.layers.Activation("linear", dtype="float32", name="map_cast")(logits)
    side = logits.shape[1]
    # split, not slices: the slices' gradients (TensorFlow's StridedSliceGrad)
    # are slow.
    disks, offsets = keras.ops.split(logits, [NUM_JOINTS], axis=-1)
    maps = keras.layers.Activation("sigmoid", dtype="float32", name="maps")(disks)
    offsets = keras.layers.Reshape(
        (side, side, NUM_JOINTS, 2), dtype="float32", name="offsets"
    )(offsets * conf["radius"])
    stride = CROP_SIZE / side  # input pixels per map pixel
    keypoints = OffsetVote(stride, name="keypoints")([maps, offsets])
    return {"keypoints": keypoints, "maps": maps, "offsets": offsets}


def _labelled(labels):
    """The labelled joints float32 [B, 21] (1: labelled): labels["labelled"], else
    those of labels["keypoints"] (hjr.core.metrics.labelled)."""
    from keras import ops

    from hjr.core.metrics import labelled

    if "labelled" in labels:
        return ops.cast(labels["labelled"], "float32")
    return labelled(labels["keypoints"])


def _joint_squares(labels, outputs):
    """Squared joint distances [B, 21] (finite) of the predicted keypoints, and
    _labelled(labels)."""
    from hjr.core.metrics import fill_unlabelled, squared_distances

    mask = _labelled(labels)
    truth = fill_unlabelled(labels["keypoints"], mask)
    return squared_distances(truth, outputs["keypoints"]), mask


def _map_mean(pixels, labels):
    """The mean of pixels [B, s, s, 21] over the channels of labelled joints."""
    from keras import ops

    mask = _labelled(labels)
    total = ops.sum(pixels * mask[:, None, None, :])
    area = pixels.shape[1] * pixels.shape[2]
    return total / (ops.maximum(ops.sum(mask), 1.0) * area)


def joint_mse(labels, outputs, conf):
    """The mean squared joint distance (kaggle_mse) of the predicted keypoints,
    over the labelled joints of the batch."""
    from hjr.core.metrics import joint_mean

    return joint_mean(*_joint_squares(labels, outputs), axis=None)


def _stride(size, conf):
    return CROP_SIZE / size


def disk_targets(keypoints, size, conf):
    from hjr.core import codec

    stride = _stride(size, conf)
    return {"maps": codec.disk_maps(keypoints / stride, size, conf["radius"] / stride)}


def gaussian_targets(keypoints, size, conf):
    from hjr.core import codec

    stride = _stride(size, conf)
    maps = codec.gaussian_maps(keypoints / stride, size, conf["sigma2"] / stride**2)
    return {"maps": maps}


def offset_targets(keypoints, size, conf):
    """Disks of `radius` (maps) and, per pixel, each joint's offset from the pixel
    centre (offsets [B, s, s, 21, 2], input pixels)."""
    from hjr.core import codec

    stride = _stride(size, conf)
    return {
        "maps": codec.disk_maps(keypoints / stride, size, conf["radius"] / stride),
        "offsets": codec.offset_maps(keypoints / stride, size) * stride,
    }


def _with_integral(map_loss):
    def loss(labels, outputs, conf):
        total = map_loss(labels, outputs, conf)
        if conf["integral"]:
            from keras import ops

            from hjr.core.metrics import joint_mean

            squared, mask = _joint_squares(labels, outputs)
            distance = joint_mean(ops.sqrt(squared + 1e-12), mask, axis=None)
            total = total + conf["integral"] * distance
        return total

    loss.__doc__ = map_loss.__doc__ + (
        " Plus `integral` x the mean joint distance (labelled joints)."
    )
    return loss


def pixel_crossentropy(labels, outputs, conf=None):
    """Per-pixel binary cross-entropy of the predicted probabilities, averaged
    over the maps of labelled joints."""
    import keras

    probabilities = outputs["maps"]
    pixels = keras.losses.binary_crossentropy(
        labels["maps"][..., None], probabilities[..., None]
    )
    return _map_mean(pixels, labels)


def pixel_l2(labels, outputs, conf=None):
    """Mean squared difference of the predicted and the target maps of labelled
    joints."""
    from keras import ops

    return _map_mean(ops.square(outputs["maps"] - labels["maps"]), labels)


def offsets_loss(labels, outputs, conf):
    """Per-pixel cross-entropy of the disks, plus the mean absolute error of the
    offsets (in units of the disk radius) over the pixels inside each labelled
    joint's disk."""
    from keras import ops

    disks = labels["maps"] * _labelled(labels)[:, None, None, :]
    error = ops.sum(ops.abs(outputs["offsets"] - labels["offsets"]), axis=-1)
    inside = ops.maximum(ops.sum(disks), 1.0)
    offsets = ops.sum(error * disks) / inside / conf["radius"]
    return pixel_crossentropy(labels, outputs) + offsets


HEADS = {
    "fc": Head(
        summary="a dense layer regressing the 42 coordinates",
        outputs=fc_outputs,
        loss=joint_mse,
        defaults=HEAD_DEFAULTS["fc"],
    ),
    "classification": Head(
        summary="per-pixel classification of disks around each joint",
        outputs=_map_outputs("sigmoid"),
        target=disk_targets,
        loss=_with_integral(pixel_crossentropy),
        defaults=HEAD_DEFAULTS["classification"],
    ),
    "scoremap": Head(
        summary="L2 regression of Gaussian score maps around each joint",
        outputs=_map_outputs("linear"),
        target=gaussian_targets,
        loss=_with_integral(pixel_l2),
        defaults=HEAD_DEFAULTS["scoremap"],
    ),
    "offsets": Head(
        summary="a coarse disk map plus per-pixel offsets to each joint, decoded "
        "by soft Hough voting",
        outputs=offsets_outputs,
        target=offset_targets,
        loss=_with_integral(offsets_loss),
        defaults=HEAD_DEFAULTS["offsets"],
    ),
}
