"""The package's layout: rooms by concern, each importing only from itself or a room below it, and no cycles."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "clinical_utils"
# lowest first; a module may import from its own room or a lower layer (the two papers are siblings: neither
# imports the other)
LAYERS = [("clinical_utils", "params", "records", "progress"), ("data",), ("training",), ("selection",), ("stats",),
          ("active", "refinement"), ("experiments", "labeling"), ("batch", "report")]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _layer(module: str) -> int:
    return next(i for i, rooms in enumerate(LAYERS) if _room(module) in rooms)


def _imports(path: Path) -> set[str]:
    """The package's modules that `path` imports at its top level (imports inside functions are deliberate and
    lazy: they run after every module has loaded)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            target = f"{base}.{node.module}" if node.module else base
            names = {f"{target}.{alias.name}" for alias in node.names}
            # from . import name: the submodule `name`; from .module import name: that module
            found |= (names & modules) or {target}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("clinical_utils"):
            found |= ({f"{node.module}.{alias.name}" for alias in node.names} & modules) or {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("clinical_utils")}
    return {name for name in found if name in modules and name != module}


GRAPH = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_no_module_imports_one_that_imports_it_back():
    done, stack = set(), []

    def visit(module):
        if module in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(module):] + [module]))
        if module in done:
            return
        stack.append(module)
        for imported in sorted(GRAPH.get(module, ())):
            visit(imported)
        stack.pop()
        done.add(module)

    for module in sorted(GRAPH):
        visit(module)
    assert GRAPH["clinical_utils.report.tables"] >= {"clinical_utils.report.frames", "clinical_utils.report.text"}


def test_every_module_sits_in_a_room_and_imports_nothing_above_it():
    upward = [f"{module} -> {imported}" for module, imported_set in GRAPH.items() for imported in imported_set
              if _room(imported) != _room(module) and _layer(imported) >= _layer(module)]
    assert not upward, "imports at or above the importer's layer: " + "; ".join(sorted(upward))
    flat = sorted(m for m in GRAPH if m.count(".") == 1 and _room(m) not in LAYERS[0] + ("stats",)
                  and not (PACKAGE / _room(m)).is_dir())
    assert not flat, f"modules outside the rooms: {flat}"


def test_modules_that_moved_still_import_under_their_old_names():
    import importlib
    import sys
    import warnings

    import clinical_utils

    for old, new in clinical_utils.MOVED.items():
        sys.modules.pop(old, None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert module is importlib.import_module(new)
        assert any(new in str(w.message) for w in caught if w.category is DeprecationWarning)
    import subprocess

    old = subprocess.run([sys.executable, "-m", "clinical_utils.reproduce", "--help"], capture_output=True, text=True)
    assert old.returncode != 0 and "run python -m clinical_utils.batch" in old.stderr


def test_what_noisy_experiments_called_configure_still_configures():
    import warnings

    from clinical_utils.experiments import configure

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from clinical_utils.noisy_experiments import configure_noisy, noisy_profile_values
    assert configure_noisy is configure and noisy_profile_values("retina_noisy")["noise_rate"] == 0.6
    assert any("configure_noisy is now configure" in str(w.message) for w in caught)
