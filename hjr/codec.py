"""The one place that turns keypoints into maps and maps back into keypoints.

Keypoints: float32 [B, 21, 2], x = column, y = row, pixel i covering [i, i+1), so
pixel (c, r) has its centre at (c + 0.5, r + 0.5). Maps: float32 [B, S, S, 21].

- `disk_maps`: 1 on pixels whose centre lies within `radius` of the joint, else 0
  (targets of the classification head).
- `gaussian_maps`: exp(-d^2 / (2 sigma^2)) of the distance d from each pixel centre
  (targets of the score-map head; sigma^2 = 100 in the paper).
- `offset_maps`: each joint's offset from every pixel centre (targets of the
  offsets head).
- `argmax_offsets`: each map's highest pixel's centre plus its offset there (the
  offsets head's keypoints).
- `expectation`: the sub-pixel soft-argmax, sum over pixels of w * centre with w the
  normalised map. Maps are clipped at zero before normalising: probabilities are
  never negative, and a score map's negative values carry no position (their
  Gaussian targets are >= 0) but would pull a signed average anywhere, even off the
  image. A map with no positive value decodes to the image centre.
Labels are made from keypoints on the device inside the training step, never stored.
Maps may be coarser than the image (hjr.heads: map_stride): keypoints in map pixels
are the image's divided by the stride, the same convention at another scale.
The radius and sigma^2 of a run are its head's settings (hjr.heads.HEADS).
"""

from keras import ops


def _squared_distances(keypoints, size):
    """[B, S, S, 21]: squared distance of every pixel centre to every joint."""
    keypoints = ops.cast(keypoints, "float32")
    centres = ops.arange(size, dtype="float32") + 0.5
    dx = centres[None, None, :, None] - keypoints[:, None, None, :, 0]
    dy = centres[None, :, None, None] - keypoints[:, None, None, :, 1]
    return dx * dx + dy * dy


def disk_maps(keypoints, size, radius):
    """Binary disks of `radius` around each joint: float32 [B, size, size, 21]."""
    inside = _squared_distances(keypoints, size) <= radius * radius
    return ops.cast(inside, "float32")


def gaussian_maps(keypoints, size, sigma2):
    """Gaussians of variance `sigma2` around each joint: float32 [B, S, S, 21]."""
    return ops.exp(-_squared_distances(keypoints, size) / (2.0 * sigma2))


def offset_maps(keypoints, size):
    """Offsets from every pixel centre to every joint: float32 [B, S, S, 21, 2]
    (x, y), map pixels."""
    keypoints = ops.cast(keypoints, "float32")
    centres = ops.arange(size, dtype="float32") + 0.5
    dx = keypoints[:, None, None, :, 0] - centres[None, None, :, None]
    dy = keypoints[:, None, None, :, 1] - centres[None, :, None, None]
    return ops.stack([dx + ops.zeros_like(dy), dy + ops.zeros_like(dx)], axis=-1)


def argmax_offsets(maps, offsets, stride=1.0):
    """Keypoints float32 [B, 21, 2] in image pixels: the centre of each map's highest
    pixel plus the offset predicted there. maps [B, s, s, 21]; offsets
    [B, s, s, 21, 2] in image pixels; stride: image pixels per map pixel."""
    height, width, joints = maps.shape[1], maps.shape[2], maps.shape[3]
    flat = ops.reshape(ops.cast(maps, "float32"), [-1, height * width, joints])
    best = ops.argmax(flat, axis=1)  # [B, 21]
    pick = ops.one_hot(best, height * width, axis=1, dtype="float32")  # [B, HW, 21]
    offsets = ops.reshape(ops.cast(offsets, "float32"), [-1, height * width, joints, 2])
    offset = ops.einsum("bpj,bpjc->bjc", pick, offsets)
    best = ops.cast(best, "float32")
    row = ops.floor(best / width)
    col = best - row * width
    centre = ops.stack([col + 0.5, row + 0.5], axis=-1) * stride
    return centre + offset


def expectation(maps):
    """Sub-pixel keypoints float32 [B, 21, 2] from maps [B, H, W, 21] (any sign;
    H and W known when the step is traced)."""
    maps = ops.relu(ops.cast(maps, "float32"))
    height, width = maps.shape[1], maps.shape[2]
    total = ops.sum(maps, axis=(1, 2))  # [B, 21]
    col_mass = ops.sum(maps, axis=1)  # [B, W, 21]
    row_mass = ops.sum(maps, axis=2)  # [B, H, 21]
    x = ops.einsum("bwj,w->bj", col_mass, ops.arange(width, dtype="float32") + 0.5)
    y = ops.einsum("bhj,h->bj", row_mass, ops.arange(height, dtype="float32") + 0.5)
    empty = total <= 1e-12
    safe = ops.where(empty, ops.ones_like(total), total)
    x = ops.where(empty, width / 2.0, x / safe)
    y = ops.where(empty, height / 2.0, y / safe)
    return ops.stack([x, y], axis=-1)
