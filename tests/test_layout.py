"""The package's structure: imports flow one way between packages, no cycles, short modules, thin commands."""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "aejax")

# A package may import itself and the packages before it, never one after it.
LAYERS = ("core", "data", "models", "objectives", "figures", "training", "evaluation", "studies")
COMMAND_MODULES = ("main", "evaluate", "inspect", "disentanglement_eval", "sweep", "sweep_summary", "bench",
                   "pretrain", "linear_vs_pca", "n2d", "prior", "fit_prior")


def _modules() -> dict[str, str]:
    found = {}
    for directory, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                module = "aejax." + os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[module.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(module: str, path: str) -> set[str]:
    """aejax modules imported anywhere in the file (function-level imports included)."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            # `from package import module` imports that module; `from module import name` the module.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                     for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return len(LAYERS)  # aejax itself and the command modules: above every package


def test_packages_import_only_packages_before_them():
    upward = [f"{module} -> {target}" for module, path in MODULES.items() for target in _imports(module, path)
              if _layer(target) > _layer(module)]
    assert not upward, "imports against the layer order " + " < ".join(LAYERS) + ":\n" + "\n".join(upward)


def test_no_import_cycles():
    # A package importing its own submodules (to re-export or collect them) is not a cycle.
    graph = {m: {t for t in _imports(m, p) if not t.startswith(m + ".")} for m, p in MODULES.items()}
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(target):] + [target]))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_modules_are_short():
    long = {m: n for m, p in MODULES.items() if (n := sum(1 for _ in open(p))) > 400}
    assert not long, f"modules over 400 lines: {long}"


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_commands_are_thin_entry_points(name):
    source = open(MODULES[f"aejax.{name}"]).read()
    assert 'if __name__ == "__main__":' in source
    assert source.count("\n") < 80, f"aejax/{name}.py should only parse flags and call into a package"


def test_every_package_module_is_reachable_by_the_layers():
    top_level = {m.split(".")[1] for m in MODULES if m.count(".") >= 1}
    packages = {p for p in top_level if os.path.isdir(os.path.join(ROOT, p))}
    assert packages == set(LAYERS)
    assert top_level - packages == set(COMMAND_MODULES)
