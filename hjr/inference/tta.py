"""The paper's test-time augmentation, exactly: predict on the four 90-degree
rotations of each image, rotate each prediction back into the original frame (in
the keypoint convention: pixel i covers [i, i+1)) and average."""

from keras import ops

from hjr.core.augment import rot90_keypoints
from hjr.core.codec import joint_scores


def predict_keypoints(net, images, tta: bool = True):
    """Keypoints float32 [B, 21, 2] of images uint8/float [B, S, S, 3].

    net: a network built by hjr.core.model.build_model (dict outputs with `keypoints`).
    With tta, the four rotations go through the network as one batch of 4B.
    """
    return predict_joints(net, images, tta)["keypoints"]


def predict_joints(net, images, tta: bool = True) -> dict:
    """{"keypoints": float32 [B, 21, 2], "scores": float32 [B, 21] in (0, 1]} of
    images uint8/float [B, S, S, 3] (hjr.core.codec.joint_scores); with tta, both
    averaged over the four rotations (keypoints turned back first)."""
    images = ops.cast(images, "float32")
    size = images.shape[1]
    if not tta:
        outputs = net(images, training=False)
        keypoints = ops.cast(outputs["keypoints"], "float32")
        return {"keypoints": keypoints, "scores": joint_scores(outputs, size)}
    outputs = net(turned(images), training=False)
    scores = ops.mean(ops.stack(ops.split(joint_scores(outputs, size), 4, 0)), 0)
    keypoints = turned_back_mean(outputs["keypoints"], float(size))
    return {"keypoints": keypoints, "scores": scores}


def turned(images):
    """The four 90-degree rotations of images [B, S, S, C], as one batch of 4B
    (rotation k of image b at row k * B + b)."""
    return ops.concatenate([ops.rot90(images, k, axes=(1, 2)) for k in range(4)], 0)


def turned_back_mean(keypoints, size):
    """Keypoints [4B, 21, 2] predicted on turned(images) rotated back into the
    images' frame and averaged: float32 [B, 21, 2]."""
    total = 0.0
    for k, part in enumerate(ops.split(ops.cast(keypoints, "float32"), 4, axis=0)):
        back = ops.full(ops.shape(part)[:1], (4 - k) % 4, dtype="int32")
        total += rot90_keypoints(part, back, size)
    return total / 4.0
