"""Encoders: a raw RGB crop in, a feature map out, preprocessing included.

Importing this module does not start TensorFlow (the CLI checks `--backbone`
before any work): Keras is imported when an encoder is built.
"""

import os
import re
import warnings

from data_pipeline.errors import UserError

# name -> (the keras.applications constructor, or None for tiny; the layer to cut
# at; the preprocessing: "caffe" (BGR minus ImageNet means, ResNet v1) or "unit"
# (-1..1)). The cuts end the third stage of residual blocks (conv4): v1 keeps its
# stride 16, v2 has strided the last block of that stage like TF-slim, stride 32
# (4x4 at 128x128). The paper: resnet152v2 (TF-slim resnet_v2_152).
BACKBONES = {
    "resnet50": ("ResNet50", "conv4_block6_out", "caffe"),
    "resnet101": ("ResNet101", "conv4_block23_out", "caffe"),
    "resnet152": ("ResNet152", "conv4_block36_out", "caffe"),
    "resnet50v2": ("ResNet50V2", "conv4_block6_out", "unit"),
    "resnet101v2": ("ResNet101V2", "conv4_block23_out", "unit"),
    "resnet152v2": ("ResNet152V2", "conv4_block36_out", "unit"),
    "tiny": (None, "block2_out", "unit"),
    "small": (None, "block2_2_out", "unit"),
    "tiny_unet": (None, "decoder_relu", "unit"),
}
# residual blocks per stage (layers.tiny_features)
TINY_DEPTH = {"tiny": 1, "small": 2, "tiny_unet": 1}


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
                f"not {what} weights ({_short(error)})", "weights", path
            ) from error
    for warning in caught:
        warnings.warn(warning.message, warning.category)


def build_encoder(backbone, weights, input_size=128):
    """The encoder `{backbone}_encoder`: image float32 [B, S, S, 3] RGB 0..255 ->
    features [B, s, s, C], S = input_size. At S = 128: resnet*v2 [B, 4, 4, 1024],
    resnet50/101/152 [B, 8, 8, 1024], tiny and small [B, 8, 8, 128], tiny_unet
    [B, 32, 32, 64].

    The first layer, "preprocess", does what the backbone expects of its input.
    weights: "imagenet", None or "none" (random init), or a path to weights of the
    whole notop network (keras' *_notop.h5, a .weights.h5 or .keras saved from it;
    for tiny: from this encoder).
    """
    import keras

    from hjr.core.layers import CaffePreprocess, tiny_features

    if backbone not in BACKBONES:
        raise UserError(f"expected one of {', '.join(BACKBONES)}", "backbone", backbone)
    app_name, cut, preprocessing = BACKBONES[backbone]
    what = f"{app_name} notop" if app_name else f"{backbone} backbone"
    weights = None if weights is None or str(weights).lower() == "none" else weights
    if weights == "imagenet" and app_name is None:
        raise UserError(
            f"the {backbone} backbone has no ImageNet weights; use none or a "
            "weights file",
            "weights",
            weights,
        )
    if weights not in (None, "imagenet") and not os.path.isfile(weights):
        raise UserError("no such file", "weights", weights)

    image = keras.Input((input_size, input_size, 3), name="image")
    if preprocessing == "caffe":
        x = CaffePreprocess(name="preprocess")(image)
    else:  # keras' "tf" preprocessing (resnet v2 and tiny)
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(image)
    if app_name is None:
        unet = backbone == "tiny_unet"
        net = keras.Model(image, tiny_features(x, TINY_DEPTH[backbone], unet))
    else:
        app = getattr(keras.applications, app_name)
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
                f"could not download the ImageNet weights of {app_name} "
                f"({_short(error)}); give a local notop weights file (e.g. "
                f"{backbone}_weights_tf_dim_ordering_tf_kernels_notop.h5) or none",
                "weights",
                weights,
            ) from error
    if weights not in (None, "imagenet"):
        _load_weights(net, weights, what)
    return keras.Model(image, net.get_layer(cut).output, name=f"{backbone}_encoder")
