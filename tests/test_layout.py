"""The package's shape: no import cycle among charmodel's modules, counting imports inside
functions too (a lazy import hides a cycle; it does not remove it)."""

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "charmodel"


def imports_of(path: Path) -> set[str]:
    """The charmodel modules a module imports, anywhere in it."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("charmodel."):
            out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("charmodel."))
    return out


def graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    return {p.stem: imports_of(p) & modules - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


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
    assert g["engine"] and "numbering" in g["runfolder"]  # the graph was read
    assert cycles(g) == []


# The layers of docs/architecture.md: a module imports only from its own layer or those below.
LAYERS = [
    {"errors", "numbering", "render", "appserver"},                        # leaves
    {"corpus", "settings", "runfolder"},                                    # text and run folders
    {"engine", "sample", "evaluate"},                                       # the NumPy engine
    {"cells", "explain", "atlas", "ablate", "probe", "saliency", "study", "compare", "charts"},  # analyses
    {"model", "distribute", "train", "recipe", "jobs", "archive", "keras_io"},          # training and moving runs
    {"cli", "__main__"},                                                    # the command line
]


def test_every_module_has_a_layer_and_imports_only_downwards():
    g = graph()
    rank = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    assert set(g) == set(rank), f"modules without a layer in docs/architecture.md: {set(g) ^ set(rank)}"
    upwards = [(m, d) for m, deps in g.items() for d in deps if rank[d] > rank[m]]
    assert upwards == [], f"imports from a higher layer: {upwards}"
    assert "train" not in set().union(*(g[m] for m in LAYERS[3]))  # no analysis reaches training
