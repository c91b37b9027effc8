"""The shape of the code: no import cycles between the project's modules (imports inside functions count:
they are cycles deferred, not removed)."""

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = {
    "components": ROOT / "components",
    "composition": ROOT / "composition",
    "offline": ROOT / "offline",
    "rules": ROOT / "policies" / "rules",
}


def _imports(package: str, path: Path) -> set[str]:
    """Project modules a module imports, as `package.module` names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = node.module.split(".")[0] if node.module else None
                names = [base] if base else [alias.name for alias in node.names]
                found |= {f"{package}.{name}" for name in names}
            elif node.module and node.module.split(".")[0] in PACKAGES and node.module.count(".") >= 1:
                found.add(".".join(node.module.split(".")[:2]))
    return found


def graph() -> dict[str, set[str]]:
    modules = {f"{package}.{path.stem}": path for package, root in PACKAGES.items() for path in root.glob("*.py")}
    return {
        name: {m for m in _imports(name.split(".")[0], path) if m in modules and m != name}
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
