"""The `hjr` command line: one module per command, every flag declared once.

Each command's module (hjr.cli.train, ...) gives its HELP, its FLAGS (from
hjr.cli.flags, where each flag is declared once) and `run(args, verbose)`, and may
give `check(args)`. `main` parses the flags, checks every given value (its range,
a --data that parses, a flag given without the one it needs, then the command's
own `check`) before any work, and only then runs the command: a bad flag costs a
fraction of a second and never starts TensorFlow. Errors are one line naming the
flag, file or folder, and exit status 2.
"""

import argparse
import contextlib
import signal
import sys

from data_pipeline.errors import UserError
from data_pipeline.files import permission_line
from data_pipeline.progress import STOP_ASKED
from hjr.cli import (
    bench,
    browse,
    demo,
    evaluate,
    export,
    predict,
    prepare,
    reproduce,
    train,
)
from hjr.cli.flags import add, flag_line, resolve
from hjr.quiet import verbose_from_env

__all__ = ["main", "build_parser", "flag_line"]

COMMANDS = {
    "prepare": prepare,
    "browse": browse,
    "train": train,
    "predict": predict,
    "evaluate": evaluate,
    "export": export,
    "bench": bench,
    "demo": demo,
    "reproduce": reproduce,
}
VERBOSE_HELP = "show TensorFlow's own log lines too (or set HJR_VERBOSE=1)"


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hjr", description="2D hand-joint recognition: data, training, export."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        command = commands.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
        )
        for key, flag in module.FLAGS.items():
            add(command, key, flag)
        command.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help=VERBOSE_HELP,
        )
    return parser


@contextlib.contextmanager
def _stopped_as_interrupted():
    """SIGTERM (docker stop, Slurm's time limit, kill) ends hjr as Ctrl-C does:
    what it was writing is cleaned up (temporary files and folders) on the way out.
    Where Python drops the exception (raised inside a garbage-collector callback),
    the next training step or item of a long loop raises it (STOP_ASKED)."""

    def stop(number, frame):
        STOP_ASKED.set()
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    STOP_ASKED.clear()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        STOP_ASKED.clear()


def main(argv=None) -> int:
    # Off a terminal Python buffers stdout: lines would reach a log file late and
    # out of order with stderr's.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a bad flag (its line is printed)
        return done.code
    module = COMMANDS[args.command]
    verbose = args.verbose or verbose_from_env()
    with _stopped_as_interrupted():
        try:
            resolve(args, module.FLAGS, getattr(module, "UNRESOLVED", ()))
            if hasattr(module, "check"):
                module.check(args)
            module.run(args, verbose)
        except UserError as error:
            print(f"hjr: error: {flag_line(error)}", file=sys.stderr)
            return 2
        except OSError as error:  # an unreadable input or an unwritable output
            where = f"{error.filename}: " if error.filename else ""
            line = f"{where}{error.strerror or error}"
            if isinstance(error, PermissionError) and error.filename:
                line = permission_line(error.filename)
            print(f"hjr: error: {line}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("hjr: interrupted", file=sys.stderr)
            return 130
    return 0
