"""The README's code runs as written: every ```bash and ```python block, in order, in one fresh folder.

Blocks share that folder (a run trained by one block is used by the next), as a reader typing them in order
at the repository's root would (the folder links to the repository's files). ``../shared`` (the data sets beside the repository) is linked into the folder's parent when it exists;
blocks that name it are skipped, with the reason, when it does not. Unlabelled blocks (the set-up commands,
which `.ci/run` itself runs, sample output, the layout) are not run. Each block has a time limit.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FENCE = re.compile(r"^( *)```([A-Za-z]*)\s*$")
LIMIT_S = 300


def readme_blocks(path: Path = REPO / "README.md") -> list[tuple[int, str, str]]:
    """``(line, language, code)`` for every fenced block, the indentation of list items removed."""
    blocks, lines, i = [], path.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = len(m.group(1)), m.group(2), i + 1
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        if i == len(lines):
            raise AssertionError(f"README.md:{start}: code block never closed")
        code = "\n".join(line[indent:] for line in lines[start:i]) + "\n"
        blocks.append((start, lang, code))
        i += 1
    return blocks


RUN = [(line, lang, code) for line, lang, code in readme_blocks() if lang in ("bash", "python")]
OUT = re.compile(r"--out[ =](\S+)")
_UNMADE: set[str] = set()  # run folders that a skipped block would have made


def test_blocks_are_labelled():
    langs = {lang for _, lang, _ in readme_blocks()}
    assert langs <= {"", "bash", "python"}, f"unexpected block languages {langs - {'', 'bash', 'python'}}"
    assert len(RUN) >= 10, "the README's runnable examples went missing"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    if SHARED.is_dir():
        (root / "shared").symlink_to(SHARED, target_is_directory=True)
    work = root / "work"  # looks like the repository root (README.md, benchmarks/, ...), with runs/ its own
    work.mkdir()
    for item in REPO.iterdir():
        if item.name not in (".git", ".venv", "runs") and not item.name.startswith("."):
            (work / item.name).symlink_to(item, target_is_directory=item.is_dir())
    return work


@pytest.mark.slow
@pytest.mark.parametrize("line,lang,code", RUN, ids=[f"line{line}-{lang}" for line, lang, _ in RUN])
def test_readme_block_runs(workdir, line, lang, code):
    if not SHARED.is_dir():
        if "../shared" in code:
            _UNMADE.update(OUT.findall(code))
            pytest.skip(f"README.md:{line} reads ../shared, which is not beside this checkout")
        needs = sorted(run for run in _UNMADE if run in code)
        if needs:
            pytest.skip(f"README.md:{line} uses {', '.join(needs)}, made from ../shared by an earlier block")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(REPO))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's `rnnkit`
    argv = ["bash", "-e", "-o", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
    try:
        done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"README.md:{line} ({lang}) ran longer than {LIMIT_S} s")
    assert done.returncode == 0, (f"README.md:{line} ({lang}) exited {done.returncode}\n--- stdout\n"
                                  f"{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")
    assert "Traceback" not in done.stderr, f"README.md:{line}: a traceback on stderr\n{done.stderr[-3000:]}"
