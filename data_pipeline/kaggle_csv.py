"""The competition's submission CSV: `Id,Joint 0 x,Joint 0 y,...,Joint 20 y`.

Values are pixels of the 128x128 crop, x = column, y = row; `Id` counts samples of
a split (for the test set: 0..N-1 in file order).
"""

import numpy as np
import pandas as pd

from .errors import UserError
from .files import atomic_path
from .keypoints import NUM_JOINTS

COLUMNS = ["Id"] + [f"Joint {j} {axis}" for j in range(NUM_JOINTS) for axis in "xy"]


def write_keypoints_csv(path, ids, keypoints) -> None:
    """Rows sorted by Id. ids: int [N]; keypoints: float [N, 21, 2]."""
    keypoints = np.asarray(keypoints, np.float64).reshape(len(ids), 2 * NUM_JOINTS)
    frame = pd.DataFrame(keypoints, columns=COLUMNS[1:])
    frame.insert(0, "Id", np.asarray(ids, np.int64))
    with atomic_path(path) as tmp:
        frame.sort_values("Id").to_csv(tmp, index=False, float_format="%.4f")


def read_keypoints_csv(path) -> tuple:
    """(ids int64 [N], keypoints float32 [N, 21, 2]); UserError on a wrong layout."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable CSV ({error})") from None
    if list(frame.columns) != COLUMNS:
        raise UserError(
            f"{path}: expected the {len(COLUMNS)} columns Id, Joint 0 x, ..., "
            f"Joint 20 y; got {len(frame.columns)}: {', '.join(frame.columns[:4])}..."
        )
    values = frame[COLUMNS[1:]].to_numpy(np.float32)
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        raise UserError(
            f"{path}: row {bad[0] + 1} holds a missing or non-numeric value"
        )
    return frame["Id"].to_numpy(np.int64), values.reshape(-1, NUM_JOINTS, 2)
