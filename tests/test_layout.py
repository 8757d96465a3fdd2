"""The package's shape: sub-packages that show the layers of docs/architecture.md, each importing
only from its own folder or those below; no import cycle, counting imports inside functions too
(a lazy import hides a cycle; it does not remove it); files and functions of a readable size."""

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "charmodel"


def module_name(path: Path) -> str:
    """charmodel/run/folder.py -> "run.folder"; a package's face, charmodel/run/__init__.py -> "run"."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "__init__"


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The charmodel modules a module imports, anywhere in it: `from charmodel.run import folder`
    is the module run.folder; `from charmodel.engine import Engine` is the engine's face."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the package imports by its full names")
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "charmodel":
            base = node.module.partition(".")[2]
            for alias in node.names:
                full = f"{base}.{alias.name}" if base else alias.name
                out.add(full if full in known else base or "__init__")
        elif isinstance(node, ast.Import):
            out.update(a.name.partition(".")[2] for a in node.names if a.name.startswith("charmodel."))
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) - {name} for name, path in found.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    return found


def test_the_finder_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_charmodel():
    g = graph()
    assert "engine.lstm" in g["engine.sampling"] and "run.folder" in g["engine.lstm"]  # the graph was read
    assert cycles(g) == []


# The layers of docs/architecture.md, one folder each: a module imports only from its own folder or
# the folders below. The package's own face (__init__) is the front door, above everything.
LAYERS = [
    {"errors", "numbering"},  # leaves
    {"run"},                           # a run folder, its text and settings
    {"engine"},                        # the NumPy engine
    {"analysis"},                      # what the cells learned
    {"view"},                          # coloured text and charts
    {"training"},                      # TensorFlow, imported when training starts
    {"exchange"},                      # archives and Keras files
    {"cli", "__main__"},               # the command line
    {"__init__"},                      # the front door
]


def folder_of(module: str) -> str:
    return module.split(".")[0]


def test_every_module_has_a_layer_and_imports_only_downwards():
    g = graph()
    rank = {f: i for i, layer in enumerate(LAYERS) for f in layer}
    assert {folder_of(m) for m in g} == set(rank), "folders without a layer in docs/architecture.md"
    upwards = [(m, d) for m, deps in g.items() for d in deps if rank[folder_of(d)] > rank[folder_of(m)]]
    assert upwards == [], f"imports from a higher layer: {upwards}"
    analyses = [m for m in g if folder_of(m) == "analysis"]
    assert not any(folder_of(d) == "training" for m in analyses for d in g[m])  # no analysis reaches training


def test_the_package_shows_its_layers():
    top = [p.name for p in PACKAGE.glob("*.py")]
    packages = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    assert len(top) <= 8, top
    assert len(packages) >= 4, packages
    assert not (PACKAGE / "appserver.py").exists()  # the browser driver is a tool, not the package


def long_functions(path: Path, limit: int = 80) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.relative_to(ROOT)}:{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


def test_files_and_functions_of_a_readable_size():
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "pages").rglob("*.py"), ROOT / "streamlit_app.py"]
    assert [str(p) for p in PACKAGE.rglob("*.py") if len(p.read_text(encoding="utf-8").splitlines()) > 600] == []
    assert [f for p in files for f in long_functions(p)] == []
    assert long_functions(Path(__file__), limit=5)  # the measure sees a long function
