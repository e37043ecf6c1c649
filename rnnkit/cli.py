"""``rnnkit ...``: the command-line entry point.

Each subcommand lives in ``rnnkit/commands/<name>.py`` and exposes ``register(subparsers)``, which adds its
parser and sets ``func`` (a callable taking the parsed namespace and returning an exit status).
A :class:`rnnkit.errors.UserError` becomes one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys

from threadpoolctl import threadpool_limits

from rnnkit import __version__
from rnnkit.commands.options import int_range
from rnnkit.errors import UserError

# Order is the order shown in ``rnnkit --help``.
COMMANDS = ("text", "forecast", "classify", "memory", "inspect", "gradcheck", "export", "sweep", "demo")


class HelpFormatter(argparse.HelpFormatter):
    """Help that states every option's default: appended as "(default: X)" unless the text already says
    what the default is; a None default must be explained in the help text itself."""

    def _get_help_string(self, action) -> str:
        text = _plain(action.help or "")
        default = action.default
        if ("default" in text.lower() or default in (None, False, argparse.SUPPRESS) or not action.option_strings
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return text
        shown = (", ".join(map(str, default)) or "none") if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})".strip()

    def _format_text(self, text: str) -> str:
        return super()._format_text(_plain(text))


def _plain(text: str) -> str:
    """Docstring markup out of help pages: ``code`` and :role:`target` become plain words."""
    return re.sub(r":[a-z]+:`([^`]*)`", r"\1", text).replace("``", "")


class Parser(argparse.ArgumentParser):
    """argparse with rnnkit's help formatter and a one-line error (no usage block): exit status 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rnnkit",
        description="Recurrent neural networks from first principles (NumPy, hand-derived BPTT).",
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}",
                        help="print the version and exit")
    parser.add_argument("--threads", type=int_range(1, 256), default=None, metavar="N",
                        help="threads to compute with: the recurrent layers' own (an LSTM/GRU team of N, or a "
                             "background thread and N - 1 BLAS threads) and BLAS elsewhere (default: the layers "
                             "choose from the cores and their size, BLAS elsewhere on 1 thread, measured fastest "
                             "on 2 shared cores)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"rnnkit.commands.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name != f"rnnkit.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad option (already reported in one line)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with threadpool_limits(limits=args.threads or 1):  # the layers take args.threads from the tasks
            return int(args.func(args) or 0)
    except UserError as exc:
        print(f"rnnkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rnnkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
