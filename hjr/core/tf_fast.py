"""The compute core's one TensorFlow-only fast path: BatchNormalization's training
pass as one fused op (tf.compat.v1.nn.fused_batch_norm) instead of Keras' dozen
small ops forward and backward, which take a measurable share of a small
network's step on CPUs (docs/benchmarks.md). Same outputs, same moving
statistics as keras.layers.BatchNormalization. Imported only on TensorFlow.
"""

import tensorflow as tf


def fusable(layer, inputs, mask) -> bool:
    """Whether the fused op computes what Keras' layer does: 4-D channels-last
    inputs, no mask, no renorm, centre and scale on, one replica (with several,
    `synchronized` layers take statistics over the global batch)."""
    if mask is not None or len(inputs.shape) != 4 or layer.axis not in (-1, 3):
        return False
    if layer.renorm or not (layer.center and layer.scale):
        return False
    replica = tf.distribute.get_replica_context()
    return replica is not None and replica.num_replicas_in_sync == 1


def batch_norm_training(layer, inputs):
    """The layer's training pass: normalised outputs, its moving statistics
    updated as Keras updates them."""
    x = tf.cast(inputs, "float32")  # as Keras: statistics in float32
    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        x,
        tf.cast(layer.gamma, "float32"),
        tf.cast(layer.beta, "float32"),
        epsilon=layer.epsilon,
        is_training=True,
    )
    # The op returns the unbiased variance (n - 1); Keras keeps the biased.
    count = tf.cast(tf.size(x) // tf.shape(x)[-1], "float32")
    variance = variance * (count - 1.0) / count
    momentum = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1 - momentum))
    layer.moving_variance.assign(
        layer.moving_variance * momentum + variance * (1 - momentum)
    )
    return tf.cast(y, layer.compute_dtype)
