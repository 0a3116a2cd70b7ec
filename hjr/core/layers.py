"""Keras layers and blocks of hjr's networks (imported only when a model is built).

- Expectation: maps -> keypoints by soft-argmax (hjr.core.codec).
- OffsetVote: maps and offsets -> keypoints by soft Hough voting.
- UpsampledConv: bilinear upsampling then a convolution, computed cheaply.
- CaffePreprocess: the input of keras' ResNet v1.
- BatchNormalization: Keras' own, training as one fused op on TensorFlow
  (hjr.core.tf_fast).
- tiny_features: the small CNN of the `tiny` backbone.
"""

import keras
import numpy as np

from hjr.core import codec


@keras.saving.register_keras_serializable(package="hjr")
class Expectation(keras.layers.Layer):
    """Maps [B, H, W, 21] -> keypoints [B, 21, 2] by soft-argmax (hjr.core.codec), in
    image pixels: `stride` image pixels per map pixel."""

    def __init__(self, stride=1, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.stride = stride

    def call(self, maps):
        return codec.expectation(maps) * float(self.stride)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1], 2)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}


@keras.saving.register_keras_serializable(package="hjr")
class OffsetVote(keras.layers.Layer):
    """[maps [B, s, s, 21], offsets [B, s, s, 21, 2]] -> keypoints [B, 21, 2] in
    image pixels by soft Hough voting (hjr.core.codec.vote); `stride` image pixels per
    map pixel."""

    def __init__(self, stride=1, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.stride = stride

    def call(self, inputs):
        maps, offsets = inputs
        return codec.vote(maps, offsets, float(self.stride))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][-1], 2)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}


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
        # Three matrix products (plain matmuls with the batch folded into the rows,
        # so that TensorFlow's profiler counts them and the ONNX and LiteRT
        # converters keep the batch dynamic; einsums compute the same sums):
        # taps  [b y x, c] @ [c, u v j]          (u, v: the kernel's row, column)
        # half  [b y u j, v x] @ [v x, X]        (X: output column)
        # out   [b X j, u y] @ [u y, Y]          (Y: output row)
        ops = keras.ops
        _, height, width, channels = features.shape
        k, f, s = self.kernel_size, self.filters, self.factor
        kernel = ops.reshape(ops.transpose(self.kernel, (2, 0, 1, 3)), (channels, -1))
        taps = ops.matmul(ops.reshape(features, (-1, channels)), kernel)
        # The batch size where it is known when traced, so that features of
        # another size than built for fail here rather than fold into the batch.
        batch = ops.shape(features)[0]
        batch = -1 if batch is None else batch
        taps = ops.reshape(taps, (batch, height, width, k, k, f))  # b y x u v j
        cols = self._interpolation(width)  # [v, X, x]
        cols = ops.reshape(ops.transpose(cols, (0, 2, 1)), (k * width, width * s))
        half = ops.transpose(taps, (0, 1, 3, 5, 4, 2))  # b y u j v x
        half = ops.matmul(ops.reshape(half, (-1, k * width)), cols)
        half = ops.reshape(half, (-1, height, k, f, width * s))  # b y u j X
        rows = self._interpolation(height)  # [u, Y, y]
        rows = ops.reshape(ops.transpose(rows, (0, 2, 1)), (k * height, height * s))
        out = ops.transpose(half, (0, 4, 3, 2, 1))  # b X j u y
        out = ops.matmul(ops.reshape(out, (-1, k * height)), rows)
        out = ops.reshape(out, (-1, width * s, f, height * s))  # b X j Y
        return ops.transpose(out, (0, 3, 1, 2)) + self.bias

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
        pass: the three products of call() (as TensorFlow's profiler counts
        them)."""
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


@keras.saving.register_keras_serializable(package="hjr")
class BatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization (same weights, same outputs and moving
    statistics) whose training pass on TensorFlow is one fused op where it can be
    (hjr.core.tf_fast); everywhere else it is Keras' own.

    Keras keeps a layer's weights in a weights file under its class's name:
    Keras' name, so that weights of networks built with Keras' layer load."""

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable and keras.backend.backend() == "tensorflow":
            from hjr.core import tf_fast

            if tf_fast.fusable(self, inputs, mask):
                return tf_fast.batch_norm_training(self, inputs)
        return super().call(inputs, training=training, mask=mask)


def _conv_bn(x, filters, kernel, stride, name, relu=True):
    x = keras.layers.Conv2D(
        filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    # Batch statistics over the global batch, so that a data-parallel run computes
    # what one device does with the same batch: under tf.distribute that takes
    # synchronized=True (a TensorFlow-only argument); JAX computes the sharded
    # global batch as one array anyway.
    synchronized = keras.backend.backend() == "tensorflow"
    x = BatchNormalization(synchronized=synchronized, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def tiny_features(x, depth=1, unet=False):
    """A small residual CNN, stride 16: [B, 128, 128, 3] -> [B, 8, 8, 128].

    A 4x4 stride-4 stem, then two stages that halve the resolution, each of
    `depth` residual blocks (two 3x3 convs; the first block strides, with a 1x1
    projection shortcut). depth 1 (`tiny`) is sized for training on a few CPU
    cores; depth 2 (`small`, the quick preset's for fc) learns the fc head better
    for a longer step.

    `unet` (`tiny_unet`): a stem of two 3x3 stride-2 convolutions (16, then 32
    channels: the stride-4 features it passes to the decoder see a 7x7 patch
    through two nonlinear layers), a third stage (256 channels, stride 32), then a
    decoder back to stride 4, [B, 32, 32, 64]: three times, bilinear upsampling by
    2, the encoder's features of that stride concatenated, a 3x3 convolution (1x1
    at stride 4).
    """
    if unet:
        x = _conv_bn(x, 16, 3, 2, "stem_a")
        x = _conv_bn(x, 32, 3, 2, "stem")
    else:
        x = _conv_bn(x, 32, 4, 4, "stem")
    skips = [x]
    for i, filters in enumerate((64, 128, 256) if unet else (64, 128), start=1):
        for j in range(depth):
            name = f"block{i}" if j == 0 else f"block{i}_{j + 1}"
            y = _conv_bn(x, filters, 3, 2 if j == 0 else 1, f"{name}_1")
            y = _conv_bn(y, filters, 3, 1, f"{name}_2", relu=False)
            if j == 0:
                shortcut = _conv_bn(x, filters, 1, 2, f"{name}_0", relu=False)
            else:
                shortcut = x
            x = keras.layers.Add(name=f"{name}_add")([shortcut, y])
            x = keras.layers.ReLU(name=f"{name}_out")(x)
        skips.append(x)
    if unet:
        for k, skip in enumerate(reversed(skips[:-1]), start=1):
            x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{k}")(x)
            x = keras.layers.Concatenate(name=f"up{k}_concat")([x, skip])
            last = k == len(skips) - 1
            x = _conv_bn(x, 64, 1 if last else 3, 1, "decoder" if last else f"up{k}")
    return x
