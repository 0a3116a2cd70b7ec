"""The package's layout: no import circle, each layer importing only those below
it, and the compute core free of TensorFlow but for its one fast path."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Lower layers first: a module may import its own layer's modules and lower ones.
LAYERS = [
    ("data_pipeline",),
    ("hjr.quiet", "hjr.draw", "hjr.checkpoints"),
    ("hjr.config",),
    ("hjr.core",),
    ("hjr.runs",),
    ("hjr.training", "hjr.inference"),
    ("hjr.apps",),
    ("hjr.cli", "hjr.__main__"),
]


def _modules():
    found = {}
    for package in ("hjr", "data_pipeline"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path, modules):
    """The package modules that a file imports, anywhere in it (functions too)."""
    names = set()
    package = ".".join(path.relative_to(ROOT).parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.add(full if full in modules else base)
    return {name for name in names if name in modules}


def _layer(name):
    for number, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return number
    raise AssertionError(f"{name} is in no layer of LAYERS")


def test_no_import_circle():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    done, path = set(), []

    def visit(name):
        if name in path:
            raise AssertionError(" -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        path.append(name)
        for other in graph[name] - packages:
            visit(other)
        path.pop()
        done.add(name)

    for name in graph:
        visit(name)


def test_each_module_imports_only_its_layer_and_those_below():
    modules = _modules()
    for name, path in modules.items():
        for other in _imports(path, modules):
            if modules[other].name == "__init__.py":
                continue
            assert _layer(other) <= _layer(name), f"{name} imports {other}"


def test_the_compute_core_imports_tensorflow_only_in_its_fast_path():
    for path in (ROOT / "hjr" / "core").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        if path.name != "tf_fast.py":
            assert "tensorflow" not in imported, path.name


def test_the_settings_name_every_head_and_backbone_the_core_builds():
    """hjr.config declares the names (below the code they configure); the core
    builds exactly those."""
    from hjr import config
    from hjr.core.backbones import BACKBONES
    from hjr.core.heads import HEADS

    assert tuple(HEADS) == config.HEADS
    assert tuple(BACKBONES) == config.BACKBONES
    for name, head in HEADS.items():
        assert head.defaults == config.HEAD_DEFAULTS[name]
