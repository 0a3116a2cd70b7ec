"""Encoders: a raw RGB crop in, a feature map out, preprocessing included."""

import os

import keras

from data_pipeline.errors import UserError

default_conf = {
    "backbone": "resnet152v2",  # a key of BACKBONES; the paper: TF-slim resnet_v2_152
    "weights": "imagenet",  # "imagenet", "none" (random init) or a notop weights file
}

IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)  # keras' "caffe" preprocessing


@keras.saving.register_keras_serializable(package="hjr")
class CaffePreprocess(keras.layers.Layer):
    """RGB 0..255 -> BGR minus the ImageNet BGR means (keras' resnet v1 input)."""

    def call(self, x):
        mean = keras.ops.cast(keras.ops.array(IMAGENET_BGR_MEAN), x.dtype)
        return keras.ops.flip(x, axis=-1) - mean

    def compute_output_shape(self, input_shape):
        return input_shape


def _to_unit_range(name):
    """RGB 0..255 -> -1..1 (keras' "tf" preprocessing, used by resnet v2 and tiny)."""
    return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name=name)


def _tiny_block(x, filters, name):
    """A residual block that halves the resolution: two 3x3 convs + a 1x1 shortcut."""
    y = keras.layers.Conv2D(
        filters, 3, strides=2, padding="same", use_bias=False, name=f"{name}_conv1"
    )(x)
    y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(
        filters, 3, padding="same", use_bias=False, name=f"{name}_conv2"
    )(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    s = keras.layers.Conv2D(
        filters, 1, strides=2, use_bias=False, name=f"{name}_shortcut_conv"
    )(x)
    s = keras.layers.BatchNormalization(name=f"{name}_shortcut_bn")(s)
    y = keras.layers.Add(name=f"{name}_add")([s, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _tiny(x):
    """A small residual CNN, stride 16: [B, 128, 128, 3] -> [B, 8, 8, 128]."""
    x = keras.layers.Conv2D(
        16, 3, strides=2, padding="same", use_bias=False, name="stem_conv"
    )(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for i, filters in enumerate((32, 64, 128), start=1):
        x = _tiny_block(x, filters, f"block{i}")
    return x


# name -> (keras.applications constructor or None for tiny, layer to cut at,
#          preprocessing layer factory)
BACKBONES = {
    "resnet50": (keras.applications.ResNet50, "conv4_block6_out", CaffePreprocess),
    "resnet101": (keras.applications.ResNet101, "conv4_block23_out", CaffePreprocess),
    "resnet152": (keras.applications.ResNet152, "conv4_block36_out", CaffePreprocess),
    "resnet50v2": (keras.applications.ResNet50V2, "conv4_block6_out", _to_unit_range),
    "resnet101v2": (
        keras.applications.ResNet101V2,
        "conv4_block23_out",
        _to_unit_range,
    ),
    "resnet152v2": (
        keras.applications.ResNet152V2,
        "conv4_block36_out",
        _to_unit_range,
    ),
    "tiny": (None, "block3_out", _to_unit_range),
}


def _short(error, limit=160):
    """The first line of an exception's message, shortened, for one-line errors."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    text = lines[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_encoder(backbone, weights, input_size=128):
    """The encoder `{backbone}_encoder`: image float32 [B, S, S, 3] RGB 0..255 ->
    features [B, s, s, C] (S = input_size; resnet*v2: s = S/32, resnet v1 and tiny:
    s = S/16; C = 1024, tiny 128). The backbone's preprocessing is its first layer.

    weights: "imagenet", None / "none" (random init) or a path to a weights file of
    the whole notop network (keras' *_notop.h5, or .weights.h5 saved from it).
    """
    if backbone not in BACKBONES:
        raise UserError(
            f"--backbone {backbone}: unknown backbone, expected one of "
            + ", ".join(BACKBONES)
        )
    if weights is None or str(weights).lower() == "none":
        weights = None
    weights = None if weights is None else str(weights)
    app, cut, preprocess = BACKBONES[backbone]
    title = app.__name__ if app else backbone
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
        net = keras.Model(image, _tiny(x), name=f"{backbone}_full")
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
                f"{title} ({_short(error)}); pass --weights PATH to a local notop "
                f"weights file (e.g. {backbone}_weights_tf_dim_ordering_tf_kernels"
                "_notop.h5) or --weights none"
            ) from error
    if weights not in (None, "imagenet"):
        try:
            net.load_weights(weights)
        except Exception as error:
            raise UserError(
                f"--weights {weights}: not {title} notop weights ({_short(error)})"
            ) from error
    return keras.Model(image, net.get_layer(cut).output, name=f"{backbone}_encoder")
