"""The three decoder heads of the paper, on the encoder's feature map.

Every head returns {"keypoints": float32 [B, 21, 2]}; the map heads also return
{"maps": float32 [B, S, S, 21]} (probabilities for `classification`, raw scores for
`scoremap`) that their losses compare with maps encoded from the labels.
"""

import keras

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


def fc_head(features, input_size):
    """Flatten, a dense layer with 42 linear units, reshaped to [21, 2]."""
    flat = keras.layers.Flatten(name="fc_flatten")(features)
    dense = keras.layers.Dense(2 * NUM_JOINTS, name="fc_dense", dtype="float32")(flat)
    return {"keypoints": keras.layers.Reshape((NUM_JOINTS, 2), name="keypoints")(dense)}


def _map_head(features, input_size, activation):
    """Bilinear upsampling to the input resolution, a 5x5 convolution to 21 maps."""
    factor = input_size // features.shape[1]
    up = keras.layers.UpSampling2D(factor, interpolation="bilinear", name="upsample")(
        features
    )
    logits = keras.layers.Conv2D(NUM_JOINTS, 5, padding="same", name="map_conv")(up)
    maps = keras.layers.Activation(activation, dtype="float32", name="maps")(logits)
    return {"keypoints": Expectation(name="keypoints")(maps), "maps": maps}


def classification_head(features, input_size):
    return _map_head(features, input_size, "sigmoid")


def scoremap_head(features, input_size):
    return _map_head(features, input_size, "linear")


HEADS = {
    "fc": fc_head,
    "classification": classification_head,
    "scoremap": scoremap_head,
}
