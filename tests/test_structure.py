"""The shape of the code: no import cycles between the project's modules (imports inside functions count:
they are cycles deferred, not removed)."""

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = {
    "components": ROOT / "components",
    "composition": ROOT / "composition",
    "modelops_cli": ROOT / "modelops_cli",
    "modelops_rules": ROOT / "policies" / "modelops_rules",
}


def _module_name(package: str, root: Path, path: Path) -> str:
    """`components/config/model.py` -> `components.config.model`; a subpackage's `__init__.py` is the subpackage."""
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(module: str, path: Path, modules: set[str]) -> set[str]:
    """Project modules a module imports, as dotted names (`from .x import y` resolved to the module `.x.y` when
    there is one, else `.x`)."""
    here = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = ".".join(here.split(".")[: len(here.split(".")) - node.level + 1])
            target = f"{base}.{node.module}" if node.module else base
        elif node.module and node.module.split(".")[0] in PACKAGES:
            target = node.module
        else:
            continue
        for alias in node.names:
            candidate = f"{target}.{alias.name}"
            found.add(candidate if candidate in modules else _known_prefix(target, modules))
    return found - {""}


def _known_prefix(name: str, modules: set[str]) -> str:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def graph() -> dict[str, set[str]]:
    paths = {
        _module_name(package, root, path): path for package, root in PACKAGES.items() for path in root.rglob("*.py")
    }
    modules = set(paths)
    return {
        name: {m for m in _imports(name, path, modules) if m != name}
        for name, path in paths.items()
        if name not in PACKAGES and path.name != "__main__.py"
    }


def test_no_import_cycles():
    edges = graph()
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif len(path) < 12:
                visit(nxt, [*path, nxt])

    for start in sorted(edges):
        visit(start, [start])
    assert not cycles, sorted({" -> ".join(c) for c in cycles})


def test_the_cycle_detector_finds_a_cycle(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("from .b import x\n")
    (package / "b.py").write_text("def f():\n    from .a import y\n")
    monkeypatch.setitem(PACKAGES, "pkg", package)
    assert graph()["pkg.a"] == {"pkg.b"} and graph()["pkg.b"] == {"pkg.a"}


def _defines_a_component(path: Path) -> bool:
    return any(
        isinstance(node, ast.ClassDef)
        and any(ast.unparse(base) in ("pulumi.ComponentResource", "ComponentResource") for base in node.bases)
        for node in ast.walk(ast.parse(path.read_text()))
    )


def test_components_holds_components_and_what_they_share_nothing_else():
    """The component package travels to other programs: a module no component needs belongs elsewhere
    (composition/ for what only __main__.py uses)."""
    edges = graph()
    root = PACKAGES["components"]
    components = {_module_name("components", root, p) for p in root.rglob("*.py") if _defines_a_component(p)}
    assert components == {
        "components.gateway_fallback",
        "components.gpu_pool",
        "components.model_image",
        "components.model_service",
        "components.serverless_fallback",
    }
    needed, frontier = set(components), list(components)
    while frontier:
        for module in edges.get(frontier.pop(), ()):
            if module.startswith("components.") and module not in needed:
                needed.add(module)
                frontier.append(module)
    present = {m for m in edges if m.startswith("components.")}
    assert present - needed == set()


def test_imports_from_a_parent_package_are_edges(tmp_path, monkeypatch):
    """`from ..plan import x` in a subpackage is an edge to the parent's module (a cycle through the CLI's
    subpackages, modelops_cli/offline/ and modelops_cli/verbs/, is a cycle like any other)."""
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from .sub.b import y\n")
    (tmp_path / "pkg" / "sub" / "b.py").write_text("from ..a import f\nfrom . import c\n")
    (tmp_path / "pkg" / "sub" / "c.py").write_text("")
    monkeypatch.setitem(PACKAGES, "pkg", tmp_path / "pkg")
    assert graph()["pkg.a"] == {"pkg.sub.b"} and graph()["pkg.sub.b"] == {"pkg.a", "pkg.sub.c"}
    assert {"modelops_cli.offline.tree", "modelops_cli.common"} <= graph()["modelops_cli.verbs.plan"]


PRODUCT = (
    "__main__.py",
    "components",
    "composition",
    "modelops_cli",
    "policies/modelops_rules",
    "policies/__main__.py",
)
MAX_FUNCTION_LINES = 60


def test_no_function_in_the_product_is_longer_than_60_lines():
    """Issue #25's bound (ruff's PLR0915 counts statements, not lines: a long literal or call passes it)."""
    long = []
    for top in PRODUCT:
        path = ROOT / top
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{file.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []
