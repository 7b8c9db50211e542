"""Print the package's modules with their line counts and the imports
between them (lazy ones inside functions included), and fail on a cycle.

    python tools/layout.py
"""
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fastunlearn"


def imports(path, name):
    """Package modules (dotted, relative to the package) imported anywhere in
    the file at ``path``, the module ``name``."""
    found = set()
    if path.suffix != ".py":  # Cython kernels import nothing from the package
        return found
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == "__init__":
        package = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            target = base + (node.module.split(".") if node.module else [])
            if node.module:
                found.add(".".join(target))
            else:
                found.update(".".join(target + [alias.name]) for alias in node.names)
        elif (node.module or "").startswith("fastunlearn."):
            found.add(node.module.split(".", 1)[1])
    return found


def main():
    files = sorted(p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".pyx"))
    # a subpackage's modules are named package.module; its __init__ is the package
    modules = {}
    for p in files:
        parts = p.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        modules[".".join(parts)] = p
    graph = {name: sorted(imports(p, name) & set(modules) - {name, "__init__", "_version"})
             for name, p in modules.items() if name not in ("__init__", "__main__")}
    for name, path in modules.items():
        lines = len(path.read_text().splitlines())
        shown = str(path.relative_to(PACKAGE))
        print(f"{shown:22s} {lines:5d}  -> {', '.join(graph.get(name, [])) or '-'}")
    cycles = []

    def visit(name, trail):
        for dep in graph.get(name, []):
            if dep in trail:
                cycles.append(trail[trail.index(dep):] + [dep])
            elif dep in graph:
                visit(dep, trail + [dep])

    for name in graph:
        visit(name, [name])
    if cycles:
        print("import cycles:", *sorted({" -> ".join(c) for c in cycles}), sep="\n  ")
        return 1
    print("no import cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
