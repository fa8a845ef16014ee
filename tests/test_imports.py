"""The import graph of alexnet_keras/ and simulations/, read with `ast`: no cycles, and pure modules stay pure.

Every import counts, including those inside functions: a lazy import is still an
arrow. `simulations/` installs as `alexnet_keras.simulations`, so its files get
those names. Package `__init__` files only re-export, so importing `a.b.c` is an
arrow to `a.b.c`; an `__init__`'s own imports are arrows from it. A module's own
packages are no arrow: they are already running when it runs.
"""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ROOT = "alexnet_keras"
SOURCES = {REPO / "alexnet_keras": ROOT, REPO / "simulations": f"{ROOT}.simulations"}
LAUNCHER = REPO / "alexnet_keras_cli.py"
FRAMEWORKS = {"keras", "tensorflow", "jax", "torch", "torchvision", "matplotlib"}


def module_name(path, sources=SOURCES):
    """`alexnet_keras/layers/lrn.py` -> `alexnet_keras.layers.lrn`; simulations/ is `alexnet_keras.simulations`."""
    if path == LAUNCHER:
        return "alexnet_keras_cli"
    for folder, prefix in sources.items():
        if path.is_relative_to(folder):
            rel = path.relative_to(folder).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            return ".".join((prefix, *parts))
    raise ValueError(path)


def import_nodes(path):
    return [
        n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, (ast.Import, ast.ImportFrom))
    ]


def resolve(node, name, is_package):
    """The module an `ImportFrom` reads from, relative levels resolved against module `name`."""
    if not node.level:
        return node.module
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path, name):
    """Every module `path` (module `name`) imports, at any depth; `from m import x` gives `m` and `m.x`."""
    found = set()
    for node in import_nodes(path):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        else:
            module = resolve(node, name, path.name == "__init__.py")
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}  # `from . import data` names a module
    return found


def source_files():
    return sorted(p for folder in SOURCES for p in folder.rglob("*.py")) + [LAUNCHER]


def graph(files=None, sources=SOURCES):
    """`{module: {internal modules it imports}}`."""
    names = {module_name(p, sources): p for p in (files or source_files())}
    return {
        name: {t for t in imports_of(path, name) if t in names and not _is_ancestor(t, name)}
        for name, path in names.items()
    }


def _is_ancestor(target, name):
    """`name` itself or a package above it: already running when `name` runs (`from . import x` reads one)."""
    return target == name or name.startswith(target + ".")


def find_cycle(edges):
    """One cycle as `[a, b, ..., a]`, or None (depth-first search, three colours)."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(edges, white)
    stack = []

    def visit(node):
        colour[node] = grey
        stack.append(node)
        for nxt in sorted(edges[node]):
            if colour.get(nxt, black) == grey:
                return stack[stack.index(nxt) :] + [nxt]
            if colour.get(nxt) == white and (cycle := visit(nxt)):
                return cycle
        colour[node] = black
        stack.pop()
        return None

    for node in sorted(edges):
        if colour[node] == white and (cycle := visit(node)):
            return cycle
    return None


# --- the graph ---------------------------------------------------------------------------------
def test_the_graph_sees_the_package():
    edges = graph()
    assert {"alexnet_keras.models.alexnet", "alexnet_keras.simulations.memory", "alexnet_keras_cli"} <= set(edges)
    assert "alexnet_keras.layers.lrn" in edges["alexnet_keras.layers"]  # an __init__'s re-exports are arrows
    assert "alexnet_keras.weights.io" in edges["alexnet_keras.models.alexnet"]


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_finder_sees_cycles():
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_a_planted_function_level_cycle_is_found(tmp_path):
    """Two modules that import each other only inside functions still form a cycle."""
    package = tmp_path / "alexnet_keras"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .b import g\n    return g\n")
    (package / "b.py").write_text("from . import a\n\ndef g():\n    return a\n")
    edges = graph(sorted(package.glob("*.py")), sources={package: ROOT})
    assert edges["alexnet_keras.a"] == {"alexnet_keras.b"} and edges["alexnet_keras.b"] == {"alexnet_keras.a"}
    assert find_cycle(edges) == ["alexnet_keras.a", "alexnet_keras.b", "alexnet_keras.a"]


def test_relative_levels_resolve(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("from ..errors import UserError\nfrom . import lrn\nfrom .tower_conv import GroupedConv2D\n")
    assert imports_of(path, "alexnet_keras.layers.m") >= {
        "alexnet_keras.errors",
        "alexnet_keras.layers.lrn",
        "alexnet_keras.layers.tower_conv",
    }
    init = tmp_path / "__init__.py"
    init.write_text("from .lrn import LocalResponseNormalization\n")
    assert "alexnet_keras.layers.lrn" in imports_of(init, "alexnet_keras.layers")


# --- rules on imports ----------------------------------------------------------------------------
def test_the_package_imports_itself_relatively():
    """Inside the package, `import alexnet_keras` would make every module depend on the root `__init__`."""
    offenders = []
    for path in source_files():
        if path == LAUNCHER:
            continue
        for node in import_nodes(path):
            absolute = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if not getattr(node, "level", 0) and any(m == ROOT or m.startswith(ROOT + ".") for m in absolute):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, "absolute imports of alexnet_keras inside the package: " + ", ".join(offenders)


def test_nothing_imports_names_from_the_root_init():
    """`from .. import x` must name a module: the root `__init__` re-exports for users, not for the package."""
    modules = set(graph())
    offenders = []
    for path in source_files():
        name = module_name(path)
        for node in import_nodes(path):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level
                and resolve(node, name, path.name == "__init__.py") == ROOT
            ):
                bad = [a.name for a in node.names if f"{ROOT}.{a.name}" not in modules]
                offenders += [f"{path.relative_to(REPO)}:{node.lineno} {b}" for b in bad]
    assert not offenders, offenders


def _framework_imports(path, name):
    return {m.split(".")[0] for m in imports_of(path, name)} & FRAMEWORKS


PURE = [
    "alexnet_keras.constants",
    "alexnet_keras.errors",
    "alexnet_keras.imagenet",
    "alexnet_keras.profile",
    "alexnet_keras.weights.checks",
    "alexnet_keras.evaluation.metrics",
    "alexnet_keras.training.config",
    "alexnet_keras.search.space",  # the CLI checks --space and --only before Keras starts
    "alexnet_keras.search.arms",
] + sorted(module_name(p) for p in (REPO / "simulations").glob("*.py"))


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_framework(module):
    """Plain Python and NumPy: the CLI, the planner and the simulations use them without Keras."""
    files = {module_name(p): p for p in source_files()}
    if module not in files:
        pytest.skip(f"{module} does not exist (yet)")
    found = _framework_imports(files[module], module)
    assert not found, f"{module} imports {sorted(found)}"


def test_constants_import_nothing():
    """The CLI reads constants.py for its choice lists; it may not even import the package's errors."""
    path = REPO / "alexnet_keras" / "constants.py"
    assert imports_of(path, "alexnet_keras.constants") <= {"__future__"}


# Function-level TensorFlow imports that only run on the TF backend.
TF_ONLY_ON_TF = {("alexnet_keras.layers.dropout", "next")}


def tensorflow_imports(path):
    """`[(innermost enclosing function name or None, line)]` of every TensorFlow import in `path`."""
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            modules = []
            if isinstance(child, ast.Import):
                modules = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and not child.level:
                modules = [child.module or ""]
            if any(m.split(".")[0] == "tensorflow" for m in modules):
                found.append((function, child.lineno))
            visit(child, function)

    visit(ast.parse(path.read_text(encoding="utf-8")), None)
    return found


def test_layers_models_and_weights_import_no_tensorflow():
    """They run on every backend: `keras.ops` only, TensorFlow only inside a TF-backend branch."""
    offenders, allowed = [], []
    for path in source_files():
        name = module_name(path)
        if name == ROOT or name.startswith(tuple(f"{ROOT}.{p}" for p in ("layers", "models", "weights", "predict"))):
            for function, line in tensorflow_imports(path):
                (allowed if (name, function) in TF_ONLY_ON_TF else offenders).append(f"{name}:{line}")
    assert not offenders, "tensorflow imported in " + ", ".join(offenders)
    assert len(allowed) == len(TF_ONLY_ON_TF)  # the allow-list names real imports


def test_the_launcher_imports_only_the_cli():
    assert imports_of(LAUNCHER, "alexnet_keras_cli") == {"sys", "alexnet_keras.cli", "alexnet_keras.cli.main"}
