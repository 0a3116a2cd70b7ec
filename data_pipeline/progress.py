"""Progress for a person at a terminal and for a log file.

On a terminal: a tqdm bar that redraws itself. Off one (Docker without -t, Slurm,
nohup, CI, `> log`): plain lines, one each time another tenth is done or
LINE_SECONDS have passed, and one at the end; no carriage return, no colour.
"""

import sys
import threading
import time

LINE_SECONDS = 30.0
TENTHS_FROM = 20  # fewer items: no line per tenth, only the last one
# Set by hjr's SIGTERM handler along with the KeyboardInterrupt it raises. Python
# drops an exception raised while a garbage-collector callback runs (JAX has one),
# so the long loops (each item here, each training step) check this too.
STOP_ASKED = threading.Event()


def stop_if_asked() -> None:
    """KeyboardInterrupt if a stop was asked for (STOP_ASKED) and is still pending."""
    if STOP_ASKED.is_set():
        raise KeyboardInterrupt


def on_terminal(stream=None) -> bool:
    """Whether `stream` (default stdout) is a terminal."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def duration(seconds: float) -> str:
    """12s, 3m05s, 2h04m."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress(items, total: int = None, what: str = "hjr", unit: str = "items"):
    """Yield `items`, showing how far it got: a bar on a terminal (stderr), else
    plain lines on stdout. `total`: how many there are (None: not known)."""
    if on_terminal(sys.stderr):
        from tqdm import tqdm

        for item in tqdm(items, total=total, desc=what, unit=f" {unit}", leave=False):
            stop_if_asked()
            yield item
        return
    started = last = time.monotonic()
    count = tenths = 0
    for item in items:
        stop_if_asked()
        yield item
        count += 1
        now = time.monotonic()
        tenth = count * 10 // total if total and total >= TENTHS_FROM else 0
        if (tenth > tenths and count < total) or now - last >= LINE_SECONDS:
            share = f" ({count / total:.0%})" if total else ""
            of = f"/{total}" if total else ""
            print(f"{what}: {count}{of} {unit}{share}, {duration(now - started)}")
            last, tenths = now, tenth
    print(f"{what}: {count} {unit} in {duration(time.monotonic() - started)}")
