"""The package's import graph: no cycles, and lower layers never import higher ones.

The data flows one way (config → data → model → loss → training → export), and
so do the imports. Read from the source with `ast` (every import, at module
level or inside a function), so a violation fails here before it shows up as an
import-order bug.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cornernet_tf"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """The package modules `path` imports (`from pkg import sub` counts as `pkg.sub`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cornernet_tf"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(MODULES)
            found |= subs
            if len(subs) < len(node.names):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cornernet_tf")}
    return found & set(MODULES)


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _in(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_the_imports():
    assert "cornernet_tf.inference.procedure" in GRAPH["cornernet_tf.models.cornernet"]
    assert "cornernet_tf.utils.fs" in GRAPH["cornernet_tf.spec.config"]  # module-level
    assert "cornernet_tf.training" in GRAPH["cornernet_tf.cli.train"]  # inside a function


def test_no_import_cycles():
    state, cycles = {}, []

    def visit(name, stack):
        state[name] = "open"
        stack.append(name)
        for dep in sorted(GRAPH[name]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [])
    assert cycles == []


HIGHER = (
    "cornernet_tf.training",
    "cornernet_tf.export",
    "cornernet_tf.evaluation",
    "cornernet_tf.cli",
    "cornernet_tf.runtime",
)


@pytest.mark.parametrize(
    ("lower", "forbidden"),
    [
        (
            ("cornernet_tf.spec", "cornernet_tf.utils"),
            ("cornernet_tf.models", "cornernet_tf.data", "cornernet_tf.inference", *HIGHER),
        ),
        (
            ("cornernet_tf.ops", "cornernet_tf.layers"),
            ("cornernet_tf.data", "cornernet_tf.models", "cornernet_tf.inference", *HIGHER),
        ),
        (
            (
                "cornernet_tf.targets",
                "cornernet_tf.losses",
                "cornernet_tf.images",
                "cornernet_tf.saccade_targets",
                "cornernet_tf.saccade_losses",
            ),
            ("cornernet_tf.models", "cornernet_tf.data", *HIGHER),
        ),
        (("cornernet_tf.data",), ("cornernet_tf.models", "cornernet_tf.inference", *HIGHER)),
        (("cornernet_tf.inference",), ("cornernet_tf.models", "cornernet_tf.data", *HIGHER)),
        (("cornernet_tf.models",), HIGHER),
        (
            ("cornernet_tf.serving",),
            ("cornernet_tf.models", "cornernet_tf.data", "cornernet_tf.inference", *HIGHER),
        ),
    ],
)
def test_lower_layers_do_not_import_higher_ones(lower, forbidden):
    offending = {
        name: sorted(dep for dep in deps if _in(dep, *forbidden))
        for name, deps in GRAPH.items()
        if _in(name, *lower)
    }
    assert {name: deps for name, deps in offending.items() if deps} == {}


def _third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("name", ["targets.py", "saccade_targets.py"])
def test_targets_know_nothing_of_keras(name):
    assert "keras" not in _third_party_imports(PACKAGE / name)


@pytest.mark.parametrize("path", sorted((PACKAGE / "spec").glob("*.py")), ids=lambda p: p.name)
def test_spec_imports_no_tensorflow_or_keras(path):
    # The command-line tools check arguments and configs with these modules
    # before TensorFlow loads.
    assert _third_party_imports(path) & {"tensorflow", "keras", "tf_keras"} == set()


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: _module_name(p))
def test_private_apis_only_in_their_module(path):
    # `utils/private_api.py` holds every use of a private Keras/TF module, each
    # with its reason; the other modules import public APIs only.
    if path == PACKAGE / "utils" / "private_api.py":
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    private = {n for n in names if n.startswith(("tensorflow.python", "keras.src", "tf_keras"))}
    assert private == set()
