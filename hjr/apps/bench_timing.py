"""The one timer of `hjr bench`: every figure of bench.py, bench_step.py,
bench_pipeline.py and bench_formats.py is measured by `time_calls`.

It imports nothing but NumPy, so the TensorFlow-free train-step bench can use it.
"""

import time

import numpy as np


class Timing:
    """The timed passes of one measurement, in seconds per unit of work."""

    def __init__(self, seconds):
        self.seconds = [float(s) for s in seconds]

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))

    @property
    def p90(self) -> float:
        return float(np.percentile(self.seconds, 90))

    def per_second(self) -> float:
        """Units per second at the median pass."""
        return 1.0 / self.median

    def ms(self, digits: int = 2) -> dict:
        """{median, p90, runs}: milliseconds per unit, each timed pass in runs."""
        return {
            "median": round(1000 * self.median, digits),
            "p90": round(1000 * self.p90, digits),
            "runs": [round(1000 * s, digits) for s in self.seconds],
        }


def time_calls(run, repeats: int, warmup: int = 1, units=1) -> Timing:
    """Time `repeats` calls of run() after `warmup` untimed ones (compilation,
    caches, prefetch buffers filling up); each call's time is divided by `units`,
    the work one call does (images, steps): a number, or a function called after
    each timed call that says how much that call did."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        seconds.append(elapsed / (units() if callable(units) else units))
    return Timing(seconds)
