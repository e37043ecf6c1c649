"""The task contract of ``rnnkit.tasks`` (its package docstring), checked mechanically on the source: no
plotting, signals, thread limits, progress bars, command-layer imports or print calls in a task module,
and no import cycle among the task modules. The checkers are first shown to catch planted violations."""
import ast
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rnnkit.tasks

TASKS_DIR = Path(rnnkit.tasks.__file__).parent
PACKAGE = "rnnkit.tasks"

# module prefix -> why a task module may not import it (anywhere: at module level or inside a function)
FORBIDDEN = {
    "matplotlib": "plots are drawn by the command layer (rnnkit.plots)",
    "rnnkit.plots": "plots are drawn by the command layer",
    "rnnkit.views": "pages are written by the command layer",
    "rnnkit.commands": "the command layer calls the tasks, never the other way round",
    "rnnkit.cli": "the command layer calls the tasks, never the other way round",
    "signal": "Ctrl-C/SIGTERM belong to the command layer (tasks take a stop= callable)",
    "threadpoolctl": "thread limits belong to the command layer (rnnkit --threads)",
    "tqdm": "the progress bar is fit(progress=True)'s or the command layer's",
}


def module_name(path: Path, root: Path = TASKS_DIR, package: str = PACKAGE) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([package, *parts])


def task_sources(root: Path = TASKS_DIR, package: str = PACKAGE) -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p, root, package): (p, ast.parse(p.read_text(encoding="utf-8"), filename=str(p)))
            for p in sorted(root.rglob("*.py"))}


def imported_names(tree: ast.Module, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in the file, at any depth; ``from a import b`` yields both
    ``a`` and ``a.b`` (b may be a submodule). Constant-string importlib.import_module/__import__ count too."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def forbidden_imports(sources) -> list[str]:
    bad = {}  # (file, line) -> the first forbidden name imported there, with the reason
    for mod, (path, tree) in sources.items():
        for line, name in imported_names(tree, mod, path.name == "__init__.py"):
            for prefix, why in FORBIDDEN.items():
                if name == prefix or name.startswith(prefix + "."):
                    bad.setdefault((path.name, line), f"{path.name}:{line} imports {name}: {why}")
    return [bad[k] for k in sorted(bad)]


def output_calls(sources) -> list[str]:
    """print(...) calls and any use of sys.stdout / sys.stderr: a task writes text only through ``log``."""
    bad = []
    for _, (path, tree) in sources.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                bad.append(f"{path.name}:{node.lineno} calls print()")
            elif isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr", "__stdout__", "__stderr__") \
                    and isinstance(node.value, ast.Name) and node.value.id == "sys":
                bad.append(f"{path.name}:{node.lineno} uses sys.{node.attr}")
    return bad


def import_graph(sources) -> dict[str, set[str]]:
    """Task module -> the task modules it imports (anywhere in the file, lazy imports included)."""
    graph = {}
    for mod, (path, tree) in sources.items():
        by_line: dict[int, set[str]] = {}
        for line, name in imported_names(tree, mod, path.name == "__init__.py"):
            # the longest known module the name starts with ("from rnnkit.tasks.x import Y" -> rnnkit.tasks.x)
            hits = [m for m in sources if name == m or name.startswith(m + ".")]
            if hits:
                by_line.setdefault(line, set()).add(max(hits, key=len))
        graph[mod] = set()
        for targets in by_line.values():  # "from pkg import a": an edge to pkg.a, not to the package too
            graph[mod] |= {t for t in targets if not any(u.startswith(t + ".") for u in targets)} - {mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# -- the checkers catch what they are meant to catch ------------------------------------------------------
@pytest.fixture
def planted(tmp_path):
    root = tmp_path / "pkg"
    root.mkdir()
    files = {
        "__init__.py": '"""doc"""\n',
        "a.py": "from pkg.b import thing\nimport numpy as np\n",
        "b.py": "def f():\n    from pkg import a\n    return a\nthing = 1\n",
        "c.py": "from . import d\n",
        "d.py": "import pkg.c\n",
        "e.py": ("import sys\nimport matplotlib.pyplot as plt\n\ndef f(x):\n    from rnnkit.plots.curves import c\n"
                 "    import signal\n    print(x)\n    sys.stderr.write('x')\n    return __import__('tqdm.auto')\n"),
        "f.py": "from rnnkit.train import fit\nlog = print\n\ndef g(log=None):\n    (log or (lambda s: None))('ok')\n",
    }
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    return task_sources(root, "pkg")


def test_checkers_find_planted_violations(planted):
    bad = forbidden_imports(planted)
    assert [b.split(": ")[0] for b in bad] == ["e.py:2 imports matplotlib.pyplot", "e.py:5 imports rnnkit.plots.curves",
                                              "e.py:6 imports signal", "e.py:9 imports tqdm.auto"]
    assert output_calls(planted) == ["e.py:7 calls print()", "e.py:8 uses sys.stderr"]  # ``log = print`` is fine
    graph = import_graph(planted)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"} and graph["pkg.f"] == set()
    assert cycles(graph) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"]]  # the lazy import counts too


# -- the real package -----------------------------------------------------------------------------------
def test_no_task_module_plots_touches_signals_threads_or_progress_bars():
    assert forbidden_imports(task_sources()) == []


def test_no_task_module_prints():
    assert output_calls(task_sources()) == []


def test_no_import_cycle_among_task_modules():
    graph = import_graph(task_sources())
    assert len(graph) >= 10  # the walk really saw the package
    assert cycles(graph) == []


def test_importing_every_task_loads_no_plotting_or_command_code():
    # transitively too: nothing a task imports may pull matplotlib, the plots, the pages or the CLI in
    # (not tqdm: dtaidistance, used by the classification baselines, imports it for its own use)
    mods = sorted(m for m in task_sources() if m != PACKAGE)
    code = (f"import importlib, sys\nfor m in {mods!r}:\n    importlib.import_module(m)\n"
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib' "
            "or m.startswith(('rnnkit.plots', 'rnnkit.views', 'rnnkit.commands', 'rnnkit.cli')))))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ""


def docstring_table(doc: str) -> dict[str, list[str]]:
    """The docstring's table: ``    rnnkit.tasks.<module>  name  Class.method ...`` (continued on deeper-indented
    lines) -> {module: [names]}."""
    table, current = {}, None
    for line in doc.splitlines():
        words = line.split()
        if words and words[0].startswith(PACKAGE + "."):
            current = words[0]
            table[current] = words[1:]
        elif current and words and line.startswith(" " * 8):
            table[current] += words
        else:
            current = None
    return table


def test_docstring_lists_the_four_tasks_and_their_entry_points_that_exist():
    table = docstring_table(rnnkit.tasks.__doc__)
    assert sorted(table) == [f"{PACKAGE}.{t}" for t in ("classify", "forecast", "memory", "text")]
    for module, names in table.items():
        assert len(names) >= 5, module
        mod = importlib.import_module(module)
        for dotted in names:
            obj = mod
            for attr in dotted.split("."):
                assert hasattr(obj, attr), f"{module}.{dotted} is named in the package docstring but does not exist"
                obj = getattr(obj, attr)
            assert callable(obj), dotted
