"""Print the package's modules with their line counts and the imports
between them (lazy ones inside functions included), and fail on a cycle.

    python tools/layout.py
"""
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fastunlearn"


def imports(path):
    """Package modules imported anywhere in the file at ``path``."""
    found = set()
    if path.suffix != ".py":  # Cython kernels import nothing from the package
        return found
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fastunlearn."):
            found.add(node.module.split(".")[1])
    return found


def main():
    files = sorted(p for p in PACKAGE.iterdir() if p.suffix in (".py", ".pyx"))
    modules = {p.stem: p for p in files}
    graph = {name: sorted(imports(p) & set(modules) - {name, "__init__", "_version"})
             for name, p in modules.items() if name not in ("__init__", "__main__")}
    for name, path in modules.items():
        lines = len(path.read_text().splitlines())
        print(f"{path.name:16s} {lines:5d}  -> {', '.join(graph.get(name, [])) or '-'}")
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
