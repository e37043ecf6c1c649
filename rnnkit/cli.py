"""``rnnkit ...``: the command-line entry point.

Each subcommand lives in ``rnnkit/commands/<name>.py`` and exposes ``register(subparsers)``, which adds its
parser and sets ``func`` (a callable taking the parsed namespace and returning an exit status).
A :class:`rnnkit.errors.UserError` becomes one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from threadpoolctl import threadpool_limits

from rnnkit.errors import UserError

# Order is the order shown in ``rnnkit --help``.
COMMANDS = ("text", "forecast", "classify", "memory", "inspect", "gradcheck", "export", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="Recurrent neural networks from first principles (NumPy, hand-derived BPTT).",
    )
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="BLAS threads (default 1: the recurrent layers already run their weight-gradient "
                             "GEMMs on a second thread, and on 2 cores one BLAS thread measured fastest)")
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
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.threads < 1:
        print("rnnkit: error: --threads must be at least 1", file=sys.stderr)
        return 2
    try:
        with threadpool_limits(limits=args.threads):
            return int(args.func(args) or 0)
    except UserError as exc:
        print(f"rnnkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rnnkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
