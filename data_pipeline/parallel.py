"""Preparing on every core: the synthetic hands are drawn by a process per core.

Drawing the hands (data_pipeline.synthetic: many small NumPy and OpenCV calls)
is most of the time it takes to prepare the synthetic source. The samples come
back in their order, each a function of (seed, index) alone, so what is prepared
does not depend on how many cores drew it.

The workers are plain `python -m data_pipeline.parallel` processes fed pickled
chunks through their standard input, not a multiprocessing pool: a pool's
workers import the caller's main script again, which breaks scripts without an
`if __name__ == "__main__"` guard and code read from standard input.
"""

import os
import pickle
import subprocess
import sys
import tempfile

from . import synthetic
from .crop import crop_hand

# Fewer samples than this are drawn in the calling process: starting the workers
# (a fresh interpreter each, about half a second) would cost more than they save.
PARALLEL_FROM = 1000
CHUNK = 64  # samples a worker draws per task
AHEAD = 2  # chunks queued per worker


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def in_order(function, items):
    """Yield function(item) for each int item, in order; on a process per core
    from PARALLEL_FROM items on. `function` must be picklable (a module's function
    or a functools.partial of one)."""
    items = [int(item) for item in items]
    chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    count = min(cores(), len(chunks))
    if len(items) < PARALLEL_FROM or count < 2:
        yield from map(function, items)
        return
    workers = [_Worker() for _ in range(count)]
    try:
        for chunk in range(min(len(chunks), AHEAD * count)):
            workers[chunk % count].send(function, chunks[chunk])
        for chunk in range(len(chunks)):
            results = workers[chunk % count].receive()
            following = chunk + AHEAD * count
            if following < len(chunks):
                workers[following % count].send(function, chunks[following])
            yield from results
    finally:  # also on Ctrl-C or an error: the workers stop
        for worker in workers:
            worker.stop()


class _Worker:
    """A `python -m data_pipeline.parallel` process (_serve) and its pipes."""

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.errors = tempfile.TemporaryFile()  # a full pipe would stall it
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            start_new_session=True,  # Ctrl-C stops the caller, which stops it
        )

    def send(self, function, items):
        try:
            pickle.dump((function, items), self.process.stdin)
            self.process.stdin.flush()
        except BrokenPipeError:
            raise self._failed() from None

    def receive(self) -> list:
        try:
            return pickle.load(self.process.stdout)
        except EOFError:
            raise self._failed() from None

    def _failed(self) -> RuntimeError:
        self.process.wait()
        self.errors.seek(0)
        lines = self.errors.read().decode(errors="replace").strip().splitlines()
        why = lines[-1] if lines else f"exit status {self.process.returncode}"
        return RuntimeError(f"a process drawing samples failed: {why}")

    def stop(self):
        self.process.kill()
        self.process.wait()
        for file in (self.process.stdin, self.process.stdout, self.errors):
            file.close()


def _serve():
    """A worker: (function, items) in, [function(item) for each item] out."""
    jobs, results = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to the errors, not into the results
    while True:
        try:
            function, items = pickle.load(jobs)
        except EOFError:
            return
        pickle.dump([function(item) for item in items], results)
        results.flush()


def synthetic_crop(seed, offset, crop, index, context=False) -> tuple:
    """(crop, keypoints in it, visible) of synthetic frame `offset + index`, cut
    with data_pipeline.crop.crop_hand (with `context`: its surroundings)."""
    image, keypoints, visible = synthetic.render_hand_with_visibility(
        seed, offset + index
    )
    patch, local = crop_hand(image, keypoints, crop, context)
    return patch, local, visible


if __name__ == "__main__":
    _serve()
