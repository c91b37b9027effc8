"""The shape of the code: no import cycles between the project's modules (imports inside functions count:
they are cycles deferred, not removed)."""

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = {
    "components": ROOT / "components",
    "composition": ROOT / "composition",
    "modelops_cli": ROOT / "modelops_cli",
    "modelops_cli.offline": ROOT / "modelops_cli" / "offline",
    "modelops_cli.verbs": ROOT / "modelops_cli" / "verbs",
    "rules": ROOT / "policies" / "rules",
}


def _imports(package: str, path: Path) -> set[str]:
    """What a module of `package` imports, as dotted names: each module named and each name imported from it
    (`graph` keeps those that are project modules). Relative imports are resolved against `package`."""
    tops = {name.split(".")[0] for name in PACKAGES}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.rsplit(".", node.level - 1)[0]
            source = f"{base}.{node.module}" if node.module else base
        elif node.module and node.module.split(".")[0] in tops:
            source = node.module
        else:
            continue
        found |= {source, *(f"{source}.{alias.name}" for alias in node.names)}
    return found


def graph() -> dict[str, set[str]]:
    modules = {f"{package}.{path.stem}": path for package, root in PACKAGES.items() for path in root.glob("*.py")}
    return {
        name: {m for m in _imports(name.rsplit(".", 1)[0], path) if m in modules and m != name}
        for name, path in modules.items()
        if not name.endswith(("__init__", "__main__"))
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
    components = {f"components.{p.stem}" for p in PACKAGES["components"].glob("*.py") if _defines_a_component(p)}
    assert components == {
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
    monkeypatch.setitem(PACKAGES, "pkg.sub", tmp_path / "pkg" / "sub")
    assert graph()["pkg.a"] == {"pkg.sub.b"} and graph()["pkg.sub.b"] == {"pkg.a", "pkg.sub.c"}
    assert {"modelops_cli.offline.tree", "modelops_cli.common"} <= graph()["modelops_cli.verbs.plan"]
