"""The three decoder heads of the paper, on the encoder's feature map.

Every head returns {"keypoints": float32 [B, 21, 2]}; the map heads also return
{"maps": float32 [B, S, S, 21]} (probabilities for `classification`, raw scores for
`scoremap`) that their losses compare with maps encoded from the labels.
"""

import keras
import numpy as np

from data_pipeline.keypoints import NUM_JOINTS

from . import codec


@keras.saving.register_keras_serializable(package="hjr")
class Expectation(keras.layers.Layer):
    """Maps [B, H, W, 21] -> keypoints [B, 21, 2] by soft-argmax (hjr.codec)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, maps):
        return codec.expectation(maps)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1], 2)


@keras.saving.register_keras_serializable(package="hjr")
class UpsampledConv(keras.layers.Layer):
    """Bilinear upsampling by `factor`, then a k x k "same" convolution (zero
    padding), computed exactly but cheaply.

    Bilinear upsampling is linear per channel, so it commutes with mixing channels:
    each kernel tap's channel mix is applied at the feature map's resolution
    (C -> k*k*filters maps). Upsampling a map and shifting it by a tap's offset is
    one separable linear map (a shifted interpolation matrix per axis), so the
    taps are upsampled, shifted and summed by two small matrix products, column
    axis then row axis. Same weights (kernel [k, k, C, filters], bias) and same
    outputs as UpSampling2D + Conv2D, up to float rounding, for about 100 times
    fewer operations with a 1024-channel 4x4 or 8x8 feature map.
    """

    def __init__(self, filters, kernel_size, factor, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.factor = filters, kernel_size, factor

    def build(self, input_shape):
        k = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel",
            shape=(k, k, input_shape[-1], self.filters),
            initializer="glorot_uniform",
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.filters,), initializer="zeros"
        )

    def call(self, features):
        rows = self._interpolation(features.shape[1])
        cols = self._interpolation(features.shape[2])
        taps = keras.ops.einsum("byxc,uvcj->byxuvj", features, self.kernel)
        half = keras.ops.einsum("vXx,byxuvj->byXuj", cols, taps)
        return keras.ops.einsum("uYy,byXuj->bYXj", rows, half) + self.bias

    def _interpolation(self, size):
        """[k, size * factor, size]: row Y of matrix d is the bilinear weights
        (half-pixel centres, edge-clamped, as tf.image.resize) of output pixel
        Y + d - k // 2, or zeros where that pixel lies outside (zero padding)."""
        k, out_size = self.kernel_size, size * self.factor
        coords = (np.arange(out_size) + 0.5) / self.factor - 0.5
        lower = np.floor(coords)
        frac = coords - lower
        base = np.zeros((out_size, size))
        rows = np.arange(out_size)
        np.add.at(base, (rows, np.clip(lower, 0, size - 1).astype(int)), 1 - frac)
        np.add.at(base, (rows, np.clip(lower + 1, 0, size - 1).astype(int)), frac)
        shifted = np.zeros((k, out_size, size))
        for d in range(k):
            offset = d - k // 2
            lo, hi = max(0, -offset), min(out_size, out_size - offset)
            shifted[d, lo:hi] = base[lo + offset : hi + offset]
        return keras.ops.convert_to_tensor(shifted, dtype=self.compute_dtype)

    def flops_per_image(self, input_shape) -> int:
        """Floating-point operations (2 per multiply-add) of one image's forward
        pass: the three products of call()."""
        height, width, channels = input_shape[-3:]
        k, f, s = self.kernel_size, self.filters, self.factor
        taps = height * width * channels * k * k * f
        columns = height * (width * s) * k * f * (k * width)
        rows = (height * s) * (width * s) * f * (k * height)
        return 2 * (taps + columns + rows)

    def compute_output_shape(self, input_shape):
        size = (input_shape[1] * self.factor, input_shape[2] * self.factor)
        return (input_shape[0], *size, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "factor": self.factor,
        }


def fc_head(features, input_size, layout=None):
    """Flatten, a dense layer with 42 linear units, reshaped to [21, 2]."""
    flat = keras.layers.Flatten(name="fc_flatten")(features)
    dense = keras.layers.Dense(2 * NUM_JOINTS, name="fc_dense", dtype="float32")(flat)
    return {"keypoints": keras.layers.Reshape((NUM_JOINTS, 2), name="keypoints")(dense)}


def _map_head(features, input_size, activation, layout="fast"):
    """Bilinear upsampling to the input resolution, a 5x5 convolution to 21 maps.

    layout "fast" (default) computes it as UpsampledConv; "plain" as the paper
    draws it (UpSampling2D then Conv2D); same weights, same outputs.
    """
    factor = input_size // features.shape[1]
    if layout == "plain":
        up = keras.layers.UpSampling2D(
            factor, interpolation="bilinear", name="upsample"
        )(features)
        logits = keras.layers.Conv2D(NUM_JOINTS, 5, padding="same", name="map_conv")(up)
    else:
        logits = UpsampledConv(NUM_JOINTS, 5, factor, name="map_conv")(features)
    maps = keras.layers.Activation(activation, dtype="float32", name="maps")(logits)
    return {"keypoints": Expectation(name="keypoints")(maps), "maps": maps}


def classification_head(features, input_size, layout="fast"):
    return _map_head(features, input_size, "sigmoid", layout)


def scoremap_head(features, input_size, layout="fast"):
    return _map_head(features, input_size, "linear", layout)


HEADS = {
    "fc": fc_head,
    "classification": classification_head,
    "scoremap": scoremap_head,
}
