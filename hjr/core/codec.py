"""The one place that turns keypoints into maps and maps back into keypoints.

Keypoints: float32 [B, 21, 2], x = column, y = row, pixel i covering [i, i+1), so
pixel (c, r) has its centre at (c + 0.5, r + 0.5). Maps: float32 [B, S, S, 21].

- `pixel_centres`: the centre (x, y) of every pixel of a map (also the augmentation's
  sampling grid).
- `disk_maps`: 1 on pixels whose centre lies within `radius` of the joint, else 0
  (targets of the classification head).
- `gaussian_maps`: exp(-d^2 / (2 sigma^2)) of the distance d from each pixel centre
  (targets of the score-map head; sigma^2 = 100 in the paper).
- `offset_maps`: each joint's offset from every pixel centre (targets of the
  offsets head).
- `vote`: the mean of every pixel's vote (its centre plus its offset), weighted by
  its probability squared (the offsets head's keypoints).
- `expectation`: the sub-pixel soft-argmax, sum over pixels of w * centre with w the
  normalised map. Maps are clipped at zero before normalising: probabilities are
  never negative, and a score map's negative values carry no position (their
  Gaussian targets are >= 0) but would pull a signed average anywhere, even off the
  image. A map with no positive value decodes to the image centre.
Labels are made from keypoints on the device inside the training step, never stored.
Maps may be coarser than the image (hjr.core.heads: map_stride): keypoints in map pixels
are the image's divided by the stride, the same convention at another scale.
The radius and sigma^2 of a run are its head's settings (hjr.core.heads.HEADS).
"""

from keras import ops


def pixel_centres(size):
    """[size, size, 2]: the centre (x, y) of every pixel, (column + 0.5, row + 0.5)."""
    centres = ops.arange(size, dtype="float32") + 0.5
    rows, cols = ops.meshgrid(centres, centres, indexing="ij")
    return ops.stack([cols, rows], axis=-1)


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
    return keypoints[:, None, None, :, :] - pixel_centres(size)[None, :, :, None, :]


def vote(maps, offsets, stride=1.0):
    """Keypoints float32 [B, 21, 2] in image pixels by soft Hough voting: every map
    pixel votes for its centre plus its offset, weighted by its probability
    squared (the squares quiet the many low-probability pixels far from the
    joint); a joint is the weighted mean of its votes, the centre of mass of the
    vote map. maps [B, s, s, 21] probabilities; offsets [B, s, s, 21, 2] in image
    pixels; stride: image pixels per map pixel. A map of zeros decodes to its
    pixels' mean vote."""
    maps = ops.cast(maps, "float32")
    offsets = ops.cast(offsets, "float32")
    centres = pixel_centres(maps.shape[1]) * stride  # [s, s, 2]
    weights = maps * maps + 1e-12  # [B, s, s, 21]
    total = ops.sum(weights, axis=(1, 2))  # [B, 21]
    # No slices of the offsets' x and y: their gradients (TensorFlow's
    # StridedSliceGrad) are slow.
    votes = weights[..., None] * (centres[None, :, :, None, :] + offsets)
    return ops.sum(votes, axis=(1, 2)) / total[..., None]


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


SCORE_FLOOR = 1e-4  # joint scores stay in (0, 1]


def joint_scores(outputs, size: int):
    """Per-joint scores float32 [B, 21] in (0, 1] of a network's outputs on images
    of side `size`: the map value under each predicted joint (bilinear, map pixel
    centres at i + 0.5), clipped to [SCORE_FLOOR, 1]: the map heads' probability
    (classification: the disk's, offsets: its coarse disk map's) or Gaussian score
    there; 1 for every joint of a head without maps (fc)."""
    keypoints = ops.cast(outputs["keypoints"], "float32")
    if "maps" not in outputs:
        return ops.ones_like(keypoints[..., 0])
    maps = ops.cast(outputs["maps"], "float32")  # [B, s, s, 21]
    side = maps.shape[1]
    points = keypoints * (side / size) - 0.5  # map pixel indices
    grid = ops.arange(side, dtype="float32")
    # Bilinear weights of every map column and row for each joint: [B, 21, s].
    wx = ops.relu(1.0 - ops.abs(grid[None, None, :] - points[..., 0:1]))
    wy = ops.relu(1.0 - ops.abs(grid[None, None, :] - points[..., 1:2]))
    # Elementwise products and sums only: every exporter converts them.
    rows = ops.sum(maps * ops.transpose(wx, (0, 2, 1))[:, None, :, :], axis=2)
    values = ops.sum(rows * ops.transpose(wy, (0, 2, 1)), axis=1)  # [B, 21]
    return ops.clip(values, SCORE_FLOOR, 1.0)
