"""Encoders: a raw RGB crop in, a feature map out, preprocessing included."""

import os
import re
import warnings

import keras

from data_pipeline.errors import UserError

default_conf = {
    "backbone": "resnet152v2",  # a key of BACKBONES; the paper: TF-slim resnet_v2_152
    "weights": "imagenet",  # "imagenet", "none" (random init) or a notop weights file
}

IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)  # keras' "caffe" preprocessing


@keras.saving.register_keras_serializable(package="hjr")
class CaffePreprocess(keras.layers.Layer):
    """RGB 0..255 -> BGR minus the ImageNet BGR means, the input of keras' resnet v1
    (keras.applications.resnet.preprocess_input). No weights, no arguments."""

    def call(self, x):
        mean = keras.ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=x.dtype)
        return keras.ops.flip(x, axis=-1) - mean

    def compute_output_shape(self, input_shape):
        return input_shape


def _unit_range(name):
    """RGB 0..255 -> -1..1, keras' "tf" preprocessing (resnet v2 and tiny)."""
    return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name=name)


def _conv_bn(x, filters, kernel, stride, name, relu=True):
    x = keras.layers.Conv2D(
        filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    # Synchronized: batch statistics over the global batch, so a mirrored run
    # computes what one device does with the same batch.
    x = keras.layers.BatchNormalization(synchronized=True, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _tiny(x):
    """A small residual CNN, stride 16: [B, 128, 128, 3] -> [B, 8, 8, 128].

    A 4x4 stride-4 stem, then two residual blocks that halve the resolution (two 3x3
    convs, 1x1 projection shortcut). Sized for a training step of batch 32 on 2 CPU
    cores; deeper or wider variants measured 1.5-2.5 times slower.
    """
    x = _conv_bn(x, 32, 4, 4, "stem")
    for i, filters in enumerate((64, 128), start=1):
        y = _conv_bn(x, filters, 3, 2, f"block{i}_1")
        y = _conv_bn(y, filters, 3, 1, f"block{i}_2", relu=False)
        shortcut = _conv_bn(x, filters, 1, 2, f"block{i}_0", relu=False)
        x = keras.layers.Add(name=f"block{i}_add")([shortcut, y])
        x = keras.layers.ReLU(name=f"block{i}_out")(x)
    return x


# name -> (keras.applications constructor, or None for tiny; the layer to cut at;
#          the preprocessing layer, called with its name). The cuts end the third
# stage of residual blocks (conv4): v1 keeps its stride 16, v2 has strided the
# last block of that stage like TF-slim, stride 32 (4x4 at 128x128).
BACKBONES = {
    "resnet50": (keras.applications.ResNet50, "conv4_block6_out", CaffePreprocess),
    "resnet101": (keras.applications.ResNet101, "conv4_block23_out", CaffePreprocess),
    "resnet152": (keras.applications.ResNet152, "conv4_block36_out", CaffePreprocess),
    "resnet50v2": (keras.applications.ResNet50V2, "conv4_block6_out", _unit_range),
    "resnet101v2": (keras.applications.ResNet101V2, "conv4_block23_out", _unit_range),
    "resnet152v2": (keras.applications.ResNet152V2, "conv4_block36_out", _unit_range),
    "tiny": (None, "block2_out", _unit_range),
}


def _short(error, limit=200):
    """The first line of an exception's message, shortened, for one-line errors."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    text = re.sub(r"https?://\S*/", "", lines[0])  # keep a URL's file name only
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_weights(net, path, what):
    """Load a weights file into the whole net; a wrong file is one UserError, without
    the hundreds of warnings keras gives on the way (kept when loading succeeds)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            net.load_weights(path)
        except Exception as error:
            raise UserError(
                f"--weights {path}: not {what} weights ({_short(error)})"
            ) from error
    for warning in caught:
        warnings.warn(warning.message, warning.category)


def build_encoder(backbone, weights, input_size=128):
    """The encoder `{backbone}_encoder`: image float32 [B, S, S, 3] RGB 0..255 ->
    features [B, s, s, C], S = input_size. At S = 128: resnet*v2 [B, 4, 4, 1024],
    resnet50/101/152 [B, 8, 8, 1024], tiny [B, 8, 8, 128].

    The first layer, "preprocess", does what the backbone expects of its input.
    weights: "imagenet", None or "none" (random init), or a path to weights of the
    whole notop network (keras' *_notop.h5, a .weights.h5 or .keras saved from it;
    for tiny: from this encoder).
    """
    if backbone not in BACKBONES:
        raise UserError(
            f"--backbone {backbone}: unknown backbone, expected one of "
            + ", ".join(BACKBONES)
        )
    app, cut, preprocess = BACKBONES[backbone]
    what = f"{app.__name__} notop" if app else f"{backbone} backbone"
    weights = None if weights is None or str(weights).lower() == "none" else weights
    if weights == "imagenet" and app is None:
        raise UserError(
            f"--weights imagenet: the {backbone} backbone has no ImageNet weights; "
            "pass --weights none or --weights PATH"
        )
    if weights not in (None, "imagenet") and not os.path.isfile(weights):
        raise UserError(f"--weights {weights}: no such file")

    image = keras.Input((input_size, input_size, 3), name="image")
    x = preprocess(name="preprocess")(image)
    if app is None:
        net = keras.Model(image, _tiny(x))
    else:
        try:
            net = app(
                include_top=False,
                weights="imagenet" if weights == "imagenet" else None,
                input_tensor=x,
            )
        except Exception as error:
            if weights != "imagenet":
                raise
            raise UserError(
                f"--weights imagenet: could not download the ImageNet weights of "
                f"{app.__name__} ({_short(error)}); pass --weights PATH to a local "
                f"notop weights file (e.g. {backbone}_weights_tf_dim_ordering_tf_"
                "kernels_notop.h5) or --weights none"
            ) from error
    if weights not in (None, "imagenet"):
        _load_weights(net, weights, what)
    return keras.Model(image, net.get_layer(cut).output, name=f"{backbone}_encoder")
