"""House rules that can be checked mechanically."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_core_never_imports_qt():
    code = ("import sys, pkgutil, importlib, core\n"
            "for m in pkgutil.walk_packages(core.__path__, 'core.'):\n"
            "    if not m.name.endswith('__main__'):\n"
            "        importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6', 'heartseg_gui')]\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_metrics_and_editing_do_not_load_tensorflow():
    """The window uses these on the main thread before TensorFlow loads."""
    code = ("import sys, core.metrics, core.editing, core.io, core.store.dataset, core.preprocess, core.types\n"
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_import_contracts_hold():
    """import-linter's contracts in pyproject.toml: core is Qt-free, and its packages are layered
    (cli > versions > training | inference | review > model > editing | store > io > ... > errors)."""
    linter = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout


def test_a_broken_layer_is_caught(tmp_path):
    """The layers contract is live: a copy of the tree where core.io imports core.store breaks it."""
    import shutil

    copy = tmp_path / "tree"
    for name in ("core", "heartseg_gui"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    common = copy / "core" / "io" / "common.py"
    common.write_text(common.read_text() + "\nfrom core.store import layout  # noqa\n")
    linter = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(linter), "--no-cache"], cwd=copy, capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and "BROKEN" in r.stdout.upper(), r.stdout[-3000:]


def _import_graph():
    import grimp

    return grimp.build_graph("core", "heartseg_gui", cache_dir=None)


def test_no_import_cycles():
    """No module imports itself through others (Tarjan's strongly connected components over grimp's graph)."""
    graph = _import_graph()
    modules = sorted(graph.modules)
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def connect(v):  # iterative Tarjan
        work = [(v, iter(sorted(graph.find_modules_directly_imported_by(v))))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

    for m in modules:
        if m not in index:
            connect(m)
    assert not cycles, cycles


def test_imports_inside_functions_in_core_are_only_commented_lazy_ones():
    """No import inside a function merely to hide a cycle: in core, only the heavy ones (Keras/TensorFlow,
    OpenVINO, albumentations) may be imported late, and each says why with a ``# lazy`` comment."""
    import ast

    offenders = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "core":
                    if "# lazy" not in lines[node.lineno - 1]:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
