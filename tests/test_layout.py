"""The package's layout: its modules import one another without cycles."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "clinical_utils"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The package's modules that `path` imports at its top level (imports inside functions are deliberate and
    lazy: they run after every module has loaded)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            target = f"{base}.{node.module}" if node.module else base
            found.add(target)
            if not node.module:  # from . import name: the submodules named
                found |= {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("clinical_utils")}
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules and name != module}


def test_no_module_imports_one_that_imports_it_back():
    graph = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    done, stack = set(), []

    def visit(module):
        if module in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(module):] + [module]))
        if module in done:
            return
        stack.append(module)
        for imported in sorted(graph.get(module, ())):
            visit(imported)
        stack.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert graph["clinical_utils.report.tables"] >= {"clinical_utils.report.frames", "clinical_utils.report.text"}
