"""Every subcommand's --help: each option has a line of meaning and states its default (or is a flag, a
positional or required); no docstring markup; ``rnnkit --version``; one spelling for the layer count."""
from __future__ import annotations

import argparse
import re

import pytest

from rnnkit import __version__
from rnnkit.cli import HelpFormatter, build_parser, main


def _walk(parser, path=()):
    """(command path, parser) for the top parser and every nested subparser."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, path + (name,))


PARSERS = list(_walk(build_parser()))
FLAG_ACTIONS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction,
                argparse._VersionAction, argparse._SubParsersAction, argparse._StoreConstAction,
                argparse._CountAction)


def test_every_command_is_walked():
    names = {" ".join(p) for p, _ in PARSERS}
    for cmd in ("text train", "text generate", "text evaluate", "forecast train", "forecast predict",
                "forecast backtest", "classify train", "classify predict", "classify evaluate", "memory run",
                "memory table", "inspect gradients", "inspect clipping", "gradcheck", "export"):
        assert cmd in names


@pytest.mark.parametrize("path,parser", PARSERS, ids=[" ".join(p) or "rnnkit" for p, _ in PARSERS])
def test_every_option_has_help_with_a_default(path, parser):
    fmt = HelpFormatter(parser.prog)
    missing = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, FLAG_ACTIONS):
            continue
        text = fmt._get_help_string(action)
        meaning = re.sub(r"\(default[^)]*\)", "", text).strip()
        name = "/".join(action.option_strings) or action.dest
        if len(meaning.split()) < 2:
            missing.append(f"{name}: no line of meaning ({text!r})")
        elif action.option_strings and not action.required and "default" not in text.lower():
            missing.append(f"{name}: help does not state the default ({text!r})")
    assert not missing, f"rnnkit {' '.join(path)}: " + "; ".join(missing)


@pytest.mark.parametrize("path,parser", PARSERS, ids=[" ".join(p) or "rnnkit" for p, _ in PARSERS])
def test_help_page_is_plain_text(path, parser):
    page = parser.format_help()
    assert "``" not in page and ":class:" not in page and ":mod:" not in page
    assert "(default: None)" not in page


def test_help_exits_zero_and_prints_defaults(capsys):
    assert main(["forecast", "train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Adam learning rate (default 5e-3)" in " ".join(out.split())
    assert main(["gradcheck", "--help"]) == 0
    assert "(default 1e-06)" in " ".join(capsys.readouterr().out.split())


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rnnkit {__version__}"


def test_layer_count_is_num_layers_everywhere():
    """--num-layers on every command that builds a stack; an old --layers spelling is hidden, still works."""
    for path, parser in PARSERS:
        shown = {s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
        assert "--layers" not in shown, path
        if any(a.dest == "num_layers" for a in parser._actions):
            assert "--num-layers" in shown, path
    args = build_parser().parse_args(["memory", "run", "--layers", "3"])
    assert args.num_layers == 3
    args = build_parser().parse_args(["inspect", "gradients", "--out", "/tmp/hardcli_x", "--num-layers", "2"])
    assert args.num_layers == 2
    assert build_parser().parse_args(["memory", "run"]).num_layers == 1


@pytest.mark.parametrize("path,parser", PARSERS, ids=[" ".join(p) or "rnnkit" for p, _ in PARSERS])
def test_stated_numeric_defaults_are_the_real_ones(path, parser):
    """A help text that says "(default 3000)" has 3000 as its parsed default (not a copy that drifted)."""
    wrong = []
    for action in parser._actions:
        if isinstance(action.default, bool) or not isinstance(action.default, (int, float)) or not action.help:
            continue
        m = re.search(r"\(default:? (-?[0-9][0-9_.e+-]*)[),;: ]", action.help + " ")
        if m and float(m.group(1).rstrip(".")) != float(action.default):
            wrong.append(f"{'/'.join(action.option_strings)} says {m.group(1)} but is {action.default}")
    assert not wrong, f"rnnkit {' '.join(path)}: " + "; ".join(wrong)
