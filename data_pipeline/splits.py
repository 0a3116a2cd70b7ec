"""The validation split held out of a source's training samples."""

import numpy as np


def hold_out(count: int, num_validation: int, seed: int, where: str):
    """Indices (train, validation) of `count` training samples, both sorted.

    Where `num_validation` is not below `count`, a tenth of the samples (at least
    one) is held out instead, and None is returned where there are fewer than two
    samples to split; either is said in one printed line.
    """
    if num_validation >= count:
        plural = "" if count == 1 else "s"
        asked = (
            f"hjr: {where}: {count} training sample{plural}, not more than the "
            f"{num_validation} to hold out for validation"
        )
        if count < 2:
            print(f"{asked}: too few to split, so no train or validation split")
            return None
        num_validation = max(1, count // 10)
        share = "a tenth" if count >= 10 else "at least one"
        print(
            f"{asked}: holding out {num_validation} ({share}) instead; "
            "choose with --data 'SOURCE:validation=N'"
        )
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[num_validation:]), np.sort(order[:num_validation])
