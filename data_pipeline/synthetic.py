"""Procedurally drawn hands in 320 x 320 RGB frames, the built-in stand-in for RHD.

A kinematic 3D hand (palm, five three-segment fingers, forearm stub) is posed, tilted,
rolled, mirrored for left hands, projected orthographically and drawn with OpenCV over
a random textured background. Keypoints follow RHD's order (see `keypoints.py`) and
sit exactly on the drawn joints: each finger segment is a capsule between two joints,
each non-tip joint carries a dark crease, each tip a light nail.

Visibility (`render_hand_with_visibility`, `part_map`): the hand's parts are drawn
far to near (forearm, the fingers curled behind the palm, palm, the other fingers,
each finger base to tip), so a part can hide another. The same parts, in the same
order and with the same outlines, drawn without anti-aliasing into a map of part
ids give the part on top at every pixel. A joint is visible when the part on top at
its pixel is one it belongs to: the wrist to the palm and the forearm; a finger
joint to the one or two segments of its finger that meet at it, a finger's base
joint also to the palm. Otherwise another part (a finger, the palm) covers it.
Nothing else covers the hand: the background is drawn first.
"""

import cv2
import numpy as np

FRAME_SIZE = 320
_SHIFT = 4  # fractional bits of the fixed-point coordinates given to cv2
_AA = cv2.LINE_AA

default_conf = {
    "box_size": (40.0, 140.0),  # longer side of the keypoint box, px
    "margin": 10.0,  # least keypoint distance to the frame edge, px (> crop.MARGIN)
    "tilt": 45.0,  # largest pitch and yaw out of the image plane, degrees
    "left_prob": 0.5,  # chance of a left (mirrored) hand
    "palm_facing_prob": 0.5,  # chance the palm, not the back, faces the camera
    "spread": (-0.5, 1.8),  # factor on the fingers' nominal splay
    "thumb_angle": (-65.0, -20.0),  # thumb direction from the middle finger, degrees
    "grip": (0.0, 1.0),  # range of u, the hand's grip being u**2 (0 open, 1 fist)
    "curl_noise": 0.3,  # per-finger deviation of the curl from the hand's grip
    "wrist_bend": 30.0,  # largest bend of the forearm out of the palm plane, degrees
    "skin_dark": (90, 55, 35),  # RGB of the darkest skin tone
    "skin_light": (250, 210, 185),  # RGB of the lightest skin tone
    "colour_jitter": 14,  # per-channel jitter of skin colours, grey levels
    "sleeve_prob": 0.4,  # chance the forearm wears a sleeve of a random colour
    "shapes": (2, 12),  # range of the number of background shapes
    "busy_prob": 0.3,  # chance of a busy background with (12, 40) shapes
    "distractor_prob": 0.15,  # chance a background shape is skin-coloured
    "noise": (0, 14),  # range of the pixel noise amplitude, grey levels
    "blur_prob": 0.3,  # chance the finished frame is softened by a 3x3 blur
    "draw_hand": True,  # False leaves the background alone (tests, debugging)
}

# Canonical right hand seen from the back, fingers up, in units of palm length:
# x right, y down, z away from the camera (the palm side is +z). Rows: thumb..little.
_BASES = np.array(
    [[-0.24, -0.22], [-0.30, -0.92], [-0.08, -1.0], [0.14, -0.96], [0.33, -0.86]]
)
_SPLAY = np.radians([0.0, -8.0, 0.0, 7.0, 15.0])  # from straight up, + towards little
_LENGTHS = np.array(  # [5, 3] segment lengths, base to tip
    [
        [0.38, 0.30, 0.26],
        [0.44, 0.27, 0.22],
        [0.48, 0.30, 0.24],
        [0.45, 0.28, 0.23],
        [0.35, 0.21, 0.20],
    ]
)
_FLEX_MAX = np.radians(  # [5, 3] flexion of each segment at full curl
    [[35, 55, 75], [90, 100, 70], [90, 100, 70], [90, 100, 70], [90, 100, 70]]
)
_RADII = np.array([0.12, 0.1, 0.102, 0.095, 0.085])  # finger half-widths
_TAPER = np.array([1.0, 0.9, 0.82])  # half-width factor per segment, base to tip
_PALM = np.array(  # [10, 2] palm outline around the wrist (0, 0) and the bases
    [
        [-0.32, 0.0],
        [-0.44, -0.48],
        [-0.42, -0.93],
        [-0.30, -1.02],
        [-0.08, -1.08],
        [0.14, -1.04],
        [0.33, -0.94],
        [0.43, -0.82],
        [0.38, -0.35],
        [0.28, 0.0],
    ]
)
_SHAPE_ODDS = (0.2, 0.2, 0.18, 0.22, 0.14, 0.06)  # rectangle .. stripes, see _shape

# Part ids of part_map: 0 is no part; finger f's segment j (0 base .. 2 tip) is
# FINGER_PARTS + 3 * f + j.
FOREARM, PALM, FINGER_PARTS = 1, 2, 3


def _joint_parts() -> tuple:
    """The part ids each joint (RHD order) belongs to: see the module docstring."""
    parts = [(FOREARM, PALM)]
    for f in range(5):
        segment = [FINGER_PARTS + 3 * f + j for j in range(3)]
        # RHD order runs tip -> base: tip, the two middle joints, base.
        parts += [
            (segment[2],),
            (segment[1], segment[2]),
            (segment[0], segment[1]),
            (PALM, segment[0]),
        ]
    return tuple(parts)


JOINT_PARTS = _joint_parts()


def render_hand(seed: int, index: int, conf: dict = None) -> tuple:
    """One synthetic frame, deterministic in (seed, index).

    Returns image: uint8 [320, 320, 3] RGB and keypoints: float32 [21, 2] in RHD order
    (x = column, y = row, pixel i covering [i, i+1)); every keypoint lies at least
    `margin` (10 px by default) inside the frame. `conf` overrides `default_conf`.
    """
    image, pose = _render(seed, index, conf)
    return image, pose["keypoints"]


def render_hand_with_visibility(seed: int, index: int, conf: dict = None) -> tuple:
    """render_hand's (image, keypoints) and visible: bool [21], which joints no
    other part of the hand covers (see the module docstring). A function of the
    pose alone, so of (seed, index) and the pose's settings in `conf`; also given
    with draw_hand False (the joints the hand would show)."""
    image, pose = _render(seed, index, conf)
    return image, pose["keypoints"], joint_visibility(pose)


def _render(seed: int, index: int, conf: dict) -> tuple:
    """(image, pose) of render_hand."""
    conf = {**default_conf, **(conf or {})}
    hand_rng = np.random.default_rng([seed, index, 1])
    background_rng = np.random.default_rng([seed, index, 2])
    image = _background(background_rng, conf)
    pose = _sample_pose(hand_rng, conf)
    if conf["draw_hand"]:
        _draw_hand(image, pose, hand_rng, conf)
    if background_rng.random() < conf["blur_prob"]:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    amplitude = background_rng.uniform(*conf["noise"])
    for op in (cv2.add, cv2.subtract):
        grain = np.frombuffer(background_rng.bytes(FRAME_SIZE**2), np.uint8)
        grain = grain.reshape(FRAME_SIZE, FRAME_SIZE)
        grain = cv2.convertScaleAbs(grain, alpha=amplitude / 255)
        image = op(image, cv2.cvtColor(grain, cv2.COLOR_GRAY2RGB))
    return image, pose


def _sample_pose(rng: np.random.Generator, conf: dict) -> dict:
    """Joint angles, size, rotation and position of one hand, projected to the frame.

    Returns keypoints float32 [21, 2], chains [5, 4, 2] (base -> tip, px), radii
    [5, 3] (px), palm [10, 2], forearm [4, 2], the finger drawing order (far to
    near), behind_palm (how many of them precede the palm) and left (bool).
    """
    angle = _SPLAY * rng.uniform(*conf["spread"]) + np.radians(rng.uniform(-5, 5, 5))
    angle[0] = np.radians(rng.uniform(*conf["thumb_angle"]))
    zeros = np.zeros(5)
    direction = np.stack([np.sin(angle), -np.cos(angle), zeros], 1)
    normal = np.stack([zeros, zeros, np.ones(5)], 1)
    normal[0] = np.array([np.cos(angle[0]), np.sin(angle[0]), 0.8]) / np.sqrt(1.64)
    grip = rng.uniform(*conf["grip"]) ** 2
    curl = np.clip(grip + rng.normal(0, conf["curl_noise"], 5), 0, 1)
    flexion = curl[:, None] * _FLEX_MAX + np.radians(rng.uniform(-10, 10, (5, 3)))
    total = np.cumsum(flexion, 1)[..., None]
    lengths = _LENGTHS * rng.uniform(0.9, 1.1) * rng.uniform(0.93, 1.07, (5, 3))
    steps = lengths[..., None] * (
        np.cos(total) * direction[:, None] + np.sin(total) * normal[:, None]
    )
    width = rng.uniform(0.85, 1.15)
    bases = np.concatenate([_BASES * [width, 1.0], np.zeros((5, 1))], 1)
    chains = bases[:, None] + np.concatenate([np.zeros((5, 1, 3)), steps.cumsum(1)], 1)
    bend = np.radians(rng.uniform(-conf["wrist_bend"], conf["wrist_bend"]))
    along = np.array([0.0, np.cos(bend), np.sin(bend)])
    forearm = np.array([[-0.3, -0.1, 0], [0.3, -0.1, 0], [0.32, 0, 0], [-0.32, 0, 0]])
    forearm[2:] += 1.3 * along
    palm = np.concatenate([_PALM * [width, 1.0], np.zeros((10, 1))], 1)
    joints = np.concatenate([np.zeros((1, 3)), chains[:, ::-1].reshape(20, 3)])

    tilt = np.radians(rng.uniform(-conf["tilt"], conf["tilt"], 2))
    roll = rng.uniform(0, 2 * np.pi)
    matrix = _rotation(tilt[0], 0) @ _rotation(tilt[1], 1) @ _rotation(roll, 2)
    if rng.random() < conf["palm_facing_prob"]:
        matrix = matrix @ np.diag([-1.0, 1.0, -1.0])
    left = rng.random() < conf["left_prob"]
    if left:
        matrix = matrix @ np.diag([-1.0, 1.0, 1.0])
    world = np.concatenate([joints, palm, forearm]) @ matrix.T

    low, high = world[:21, :2].min(0), world[:21, :2].max(0)
    scale = rng.uniform(*conf["box_size"]) / (high - low).max()
    margin = conf["margin"]
    offset = rng.uniform(margin - low * scale, FRAME_SIZE - margin - high * scale)
    points = world[:, :2] * scale + offset
    # Fingers curled to the far side of the palm go behind it, the others in front.
    behind = chains[:, :, 2].mean(1) * matrix[2, 2] > 0.03
    depth = world[1:21, 2].reshape(5, 4).mean(1) + rng.normal(0, 0.03, 5)
    order = sorted(range(5), key=lambda f: (not behind[f], -depth[f]))
    return {
        "keypoints": points[:21].astype(np.float32),
        "chains": points[1:21].reshape(5, 4, 2)[:, ::-1],
        "radii": _RADII[:, None] * _TAPER * width * scale,
        "palm": points[21:31],
        "forearm": points[31:],
        "order": order,
        "behind_palm": int(np.sum(behind)),
        "left": left,
    }


def _rotation(angle: float, axis: int) -> np.ndarray:
    """float [3, 3] rotation by `angle` radians about x (0), y (1) or z (2)."""
    c, s = np.cos(angle), np.sin(angle)
    i, j = [a for a in range(3) if a != axis]
    matrix = np.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def _fixed(points: np.ndarray) -> list:
    """Our pixel positions [..., 2] (centres at +0.5) as cv2 fixed-point int lists."""
    return np.round((np.asarray(points) - 0.5) * (1 << _SHIFT)).astype(int).tolist()


def _unit(vectors: np.ndarray) -> np.ndarray:
    """vectors [..., 2] scaled to length one (zero vectors stay near zero)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-6)


def _skin(conf: dict, tone: float) -> np.ndarray:
    """float [3] RGB skin colour, tone 0 the darkest and 1 the lightest."""
    dark, light = np.array(conf["skin_dark"]), np.array(conf["skin_light"])
    return dark + (light - dark) * tone


def _layers(pose: dict) -> list:
    """The hand's parts in drawing order, far to near: "forearm", the fingers
    (0 thumb .. 4 little) curled behind the palm, "palm", the other fingers."""
    order, split = pose["order"], pose["behind_palm"]
    return ["forearm", *order[:split], "palm", *order[split:]]


def _outline(pose: dict) -> int:
    """Outline thickness of the palm and the forearm, px."""
    return max(1, int(round(pose["radii"].max() / 5)))


def _draw_hand(image: np.ndarray, pose: dict, rng: np.random.Generator, conf: dict):
    """Draws forearm, palm and fingers of `pose` into image uint8 [H, W, 3] in place."""
    jitter = rng.uniform(-1, 1, 3) * conf["colour_jitter"]
    skin = np.clip(_skin(conf, rng.random()) + jitter, 0, 255)
    sleeve = rng.uniform(0, 255, 3) if rng.random() < conf["sleeve_prob"] else skin
    shades = rng.uniform(0.9, 1.08, 6)
    outline = _outline(pose)
    for layer in _layers(pose):
        if layer == "forearm":
            forearm = np.array(_fixed(pose["forearm"]), np.int32)
            cv2.fillConvexPoly(image, forearm, tuple(sleeve), _AA, _SHIFT)
            dark = tuple(sleeve * 0.55)
            cv2.polylines(image, [forearm], True, dark, outline, _AA, _SHIFT)
        elif layer == "palm":
            palm = np.array(_fixed(pose["palm"]), np.int32)
            colour = tuple(np.clip(skin * shades[5], 0, 255))
            cv2.fillPoly(image, [palm], colour, _AA, _SHIFT)
            cv2.polylines(image, [palm], True, tuple(skin * 0.55), outline, _AA, _SHIFT)
        else:
            chain, radii = pose["chains"][layer], pose["radii"][layer]
            _draw_finger(image, chain, radii, skin * shades[layer])


def _capsules(chain: np.ndarray, radii: np.ndarray) -> tuple:
    """A finger's three capsules as cv2 draws them: (starts, ends) fixed-point
    points [3], widths [3] and the outline thickness (px) around each. The last
    capsule stops short so the tip sits inside its cap."""
    steps = np.diff(chain, axis=0)
    units = _unit(steps)
    ends = chain[1:].copy()
    ends[2] -= units[2] * min(0.6 * radii[2], 0.5 * np.linalg.norm(steps[2]))
    widths = [max(2, int(round(2 * r))) for r in radii]
    return _fixed(chain[:3]), _fixed(ends), widths, max(1, int(round(radii[0] / 5)))


def _draw_finger(image: np.ndarray, chain: np.ndarray, radii: np.ndarray, skin):
    """One finger: chain float [4, 2] base -> tip (px), radii float [3] (px).

    Three shaded capsules with dark outlines (_capsules), a crease across each
    non-tip joint and a nail near the tip.
    """
    skin = np.clip(skin, 0, 255)
    dark, light = tuple(skin * 0.55), tuple(skin + (255 - skin) * 0.3)
    steps = np.diff(chain, axis=0)
    lengths = np.linalg.norm(steps, axis=1)
    units = _unit(steps)
    starts, ends, widths, outline = _capsules(chain, radii)
    for j, width in enumerate(widths):
        cv2.line(image, starts[j], ends[j], dark, width + 2 * outline, _AA, _SHIFT)
        cv2.line(image, starts[j], ends[j], tuple(skin), width, _AA, _SHIFT)
        if width >= 6:
            cv2.line(image, starts[j], ends[j], light, width // 4, _AA, _SHIFT)
    across = _unit(units[[0, 0, 1]] + units[[0, 1, 2]])[:, ::-1] * [-1, 1]
    half = (0.75 * radii)[:, None] * across
    crease = max(1, int(round(radii[0] / 3.5)))
    for a, b in zip(_fixed(chain[:3] - half), _fixed(chain[:3] + half)):
        cv2.line(image, a, b, dark, crease, _AA, _SHIFT)
    centre = _fixed(chain[3] - units[2] * min(0.5 * lengths[2], 0.9 * radii[2]))
    axes = _fixed(np.array([0.75, 0.55]) * radii[2] + 0.5)
    angle = np.degrees(np.arctan2(units[2, 1], units[2, 0]))
    nail = tuple(skin * 0.45 + np.array([250, 210, 205]) * 0.55)
    cv2.ellipse(image, centre, axes, angle, 0, 360, nail, -1, _AA, _SHIFT)


def part_map(pose: dict) -> np.ndarray:
    """uint8 [320, 320]: the id of the hand part on top at each pixel (0: none,
    FOREARM, PALM, FINGER_PARTS + 3 * finger + segment), the parts drawn as in the
    colour image (same order, shapes and outlines) without anti-aliasing."""
    parts = np.zeros((FRAME_SIZE, FRAME_SIZE), np.uint8)
    outline = _outline(pose)
    for layer in _layers(pose):
        if layer in ("forearm", "palm"):
            polygon = np.array(_fixed(pose[layer]), np.int32)
            if layer == "forearm":  # as _draw_hand fills them
                part = FOREARM
                cv2.fillConvexPoly(parts, polygon, part, cv2.LINE_8, _SHIFT)
            else:
                part = PALM
                cv2.fillPoly(parts, [polygon], part, cv2.LINE_8, _SHIFT)
            cv2.polylines(parts, [polygon], True, part, outline, cv2.LINE_8, _SHIFT)
            continue
        starts, ends, widths, rim = _capsules(
            pose["chains"][layer], pose["radii"][layer]
        )
        for j, width in enumerate(widths):
            part = FINGER_PARTS + 3 * layer + j
            cv2.line(
                parts, starts[j], ends[j], part, width + 2 * rim, cv2.LINE_8, _SHIFT
            )
    return parts


def joint_visibility(pose: dict) -> np.ndarray:
    """bool [21], RHD order: whether the part on top at each joint's pixel (part_map)
    is one the joint belongs to (JOINT_PARTS)."""
    parts = part_map(pose)
    cols, rows = np.floor(pose["keypoints"]).astype(int).T
    on_top = parts[rows, cols]
    return np.array([p in own for p, own in zip(on_top, JOINT_PARTS)])


def _background(rng: np.random.Generator, conf: dict) -> np.ndarray:
    """A random textured frame, uint8 [320, 320, 3]: colour fields, grain, shapes."""
    size = (FRAME_SIZE, FRAME_SIZE)
    k = int(rng.integers(2, 12))
    grey = rng.uniform(30, 225)
    field = grey + (rng.uniform(0, 255, (k, k, 3)) - grey) * rng.uniform(0.1, 1.0)
    image = cv2.resize(field.astype(np.uint8), size, interpolation=cv2.INTER_CUBIC)
    k = int(rng.integers(8, 80))
    detail = cv2.resize(rng.integers(0, 256, (k, k), np.uint8), size)
    detail = cv2.cvtColor(detail, cv2.COLOR_GRAY2RGB)
    weight = rng.uniform(0, 0.6)
    image = cv2.addWeighted(image, 1 - weight / 2, detail, weight, -weight * 64)
    count = rng.integers(*conf["shapes"], endpoint=True)
    if rng.random() < conf["busy_prob"]:
        count = rng.integers(12, 40, endpoint=True)
    for _ in range(count):
        grey = rng.uniform(0, 255)
        colour = grey + (rng.uniform(0, 255, 3) - grey) * rng.uniform(0.2, 1.0)
        if rng.random() < conf["distractor_prob"]:
            colour = _skin(conf, rng.random())
        _shape(image, rng, tuple(colour))
    return image


def _shape(image: np.ndarray, rng: np.random.Generator, colour: tuple):
    """Draws one random rectangle, circle, ellipse, line, polygon or stripe set."""
    kind = rng.choice(6, p=_SHAPE_ODDS)
    x, y = rng.integers(-20, FRAME_SIZE + 20, 2).tolist()
    w, h = rng.integers(4, 120, 2).tolist()
    thick = -1 if rng.random() < 0.6 else int(rng.integers(1, 6))
    if kind == 0:
        cv2.rectangle(image, (x, y), (x + w, y + h), colour, thick)
    elif kind == 1:
        cv2.circle(image, (x, y), w // 2, colour, thick, _AA)
    elif kind == 2:
        axes, angle = (w // 2, h // 4 + 1), rng.uniform(0, 180)
        cv2.ellipse(image, (x, y), axes, angle, 0, 360, colour, thick, _AA)
    elif kind == 3:
        end = rng.integers(-20, FRAME_SIZE + 20, 2).tolist()
        cv2.line(image, (x, y), end, colour, int(rng.integers(1, 16)), _AA)
    elif kind == 4:
        corners = rng.integers(-40, 40, (int(rng.integers(3, 7)), 2)) + [x, y]
        cv2.fillPoly(image, [corners.astype(np.int32)], colour, _AA)
    else:
        angle = rng.uniform(0, np.pi)
        along = np.array([np.cos(angle), np.sin(angle)])
        step = along[::-1] * [-1, 1] * rng.uniform(6, 30)
        along *= rng.uniform(30, 400)
        width = int(rng.integers(1, 8))
        for i in range(int(rng.integers(3, 15))):
            centre = np.array([x, y]) + i * step
            a, b = (centre - along).astype(int).tolist(), (centre + along).astype(int)
            cv2.line(image, a, b.tolist(), colour, width, _AA)
