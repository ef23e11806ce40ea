"""The architecture, checked: the rooms' arrows, and the hook path's standard-library rule.

Both walk the import graph of ``src/rescale_ssh`` from its source (``ast``: nothing is
imported). ARCHITECTURE.md draws what these tests hold.

- **Layers.** A module imports only modules of its own layer or of a lower one (LAYERS, top
  first). ``sshconfig/`` spans two: its operations (add/remove/sync/install, the tool's
  files) sit above ``hook/``, which writes blocks with its format modules below.
- **The hook path** is what ssh runs: the launcher, ``hook`` and ``proxy``, and everything they
  import, at module level or in a function, but for the lazy imports of :data:`OFF_PATH`,
  each a branch the hook never takes as ssh runs it. That set must be exactly ``hook/`` plus
  :data:`HOOK_PATH_OUTSIDE` (so the list stays true both ways), and no module on it may
  import a third-party package at module level: a failure names the chain of imports.
  At run time, tests/hook/test_hook.py and tests/platform/test_transport.py check what a warm
  and a cold hook really load (``-X importtime``).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "rescale_ssh"

# Top first. "name" is a room (a subpackage: every module in it) or one module.
LAYERS: list[tuple[str, ...]] = [
    ("entry", "launch", "hook.launch", "__main__"),  # the console script, the launchers
    ("cli",),  # the only room that prints results, prompts or decides an exit code
    ("doctor",),
    ("sshconfig.hosts", "sshconfig.sync", "sshconfig.install", "sshconfig.toolfiles",
     "sshconfig.forwards"),  # the operations on the user's config and the tool's files
    ("hook",),  # what ssh runs
    # the format: section, Host blocks, ssh.conf, claims, known_hosts, sharing (a new module of
    # sshconfig/ lands here, below the hook, unless it is added to the operations above)
    ("sshconfig",),
    ("platform",),
    ("keys", "desktop"),
    ("errors", "validate", "target", "paths", "settings", "userconfig", "posix", "store",
     "configfile", "exchange", "programs", "openssh", "ownership", "casehint", ""),  # leaves
]

HOOK_ROOTS = ("launch", "hook.launch", "entry", "hook.matcher", "hook.proxy")

# Lazy imports on the hook path that ssh's runs never reach, and why.
OFF_PATH: dict[tuple[str, str], str] = {
    ("entry", "cli.app"): "every command but hook and proxy",
    ("entry", "cli.boundary"): "every command but hook and proxy",
    ("platform.client", "platform.transport_requests"):
        "the commands' transport; the hook uses it only behind an HTTPS proxy, after "
        "enabling site-packages itself (hook.matcher.resolve)",
    ("platform.launchkey", "keys.keypair"): "the commands that compare launch keys",
    ("settings", "userconfig"): "the settings file: the hook reads hook.conf, never it",
}

# Third-party imports inside a function of a module on the hook path, and why ssh's runs never
# call that function (a call would fail: the hook runs with -S, without site-packages).
LAZY_THIRD_PARTY: dict[tuple[str, str], str] = {
    ("sshconfig.parser", "sshconf"):
        "parse_blocks, for section.read(): the commands read their blocks back; the hook only "
        "finds the section (section.locate, for claims)",
}

# The modules outside hook/ that the hook path loads, by room (a module that joins the path
# must be added here on purpose).
HOOK_PATH_OUTSIDE: dict[str, tuple[str, ...]] = {
    "entry points": ("", "launch", "entry"),
    "leaves": ("errors", "validate", "target", "paths", "settings", "posix", "store",
               "configfile", "exchange", "ownership", "casehint"),
    # the cold path: the job resolved through the platform, over the standard library
    "platform": ("platform", "platform.account", "platform.apiconfig", "platform.background",
                 "platform.client", "platform.hardening",
                 "platform.joblist", "platform.launchkey", "platform.lifecycle",
                 "platform.loglines", "platform.preconnect",
                 "platform.resolver", "platform.transport", "platform.transport_stdlib"),
    # the job's block: rendered, its known_hosts, its sharing lines, the user's own claims
    "sshconfig format": ("sshconfig", "sshconfig.claims", "sshconfig.hostblock",
                         "sshconfig.included", "sshconfig.knownhosts", "sshconfig.mux",
                         "sshconfig.parser", "sshconfig.section"),
}


@dataclass
class Module:
    name: str  # relative to the package: "hook.matcher"; "" is the package itself
    path: Path
    eager: set[str] = field(default_factory=set)  # ours, at module level
    lazy: set[str] = field(default_factory=set)  # ours, inside a function
    third_party: dict[str, int] = field(default_factory=dict)  # at module level: name -> line
    lazy_third_party: dict[str, int] = field(default_factory=dict)  # inside a function
    dynamic: list[int] = field(default_factory=list)  # lines of importlib / __import__ calls


def _modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC / PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = Module(name, path)
    for module in found.values():
        _read(module, found)
    return found


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    """The module an ImportFrom names, relative ones (``from .x import y``) resolved."""
    if node.level == 0:
        return node.module or ""
    package = [PACKAGE, *module.name.split(".")] if module.name else [PACKAGE]
    if module.path.name != "__init__.py":
        package = package[:-1]  # a module's own package
    base = package[:len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _read(module: Module, known: dict[str, Module]) -> None:
    def ours(dotted: str) -> str | None:
        if dotted == PACKAGE:
            return ""
        if dotted.startswith(PACKAGE + "."):
            return dotted[len(PACKAGE) + 1:]
        return None

    def imported(child: ast.AST) -> list[str]:
        if isinstance(child, ast.Import):
            return [alias.name for alias in child.names]
        if isinstance(child, ast.ImportFrom):
            source = _absolute(module, child)
            own = ours(source)
            # from rescale_ssh.hook import matcher: the module matcher (its package is
            # imported with it: _hook_path adds the packages of every module it meets)
            return [f"{source}.{alias.name}" for alias in child.names
                    if own is not None and (f"{own}.{alias.name}" if own else alias.name)
                    in known] or [source]
        return []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:  # only the body is for mypy
                    visit(ast.Module(body=[other], type_ignores=[]), lazy)
                continue
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                               ast.Lambda))
            if isinstance(child, ast.Call) and (
                    (isinstance(child.func, ast.Name) and child.func.id == "__import__")
                    or (isinstance(child.func, ast.Attribute)
                        and child.func.attr == "import_module")):
                module.dynamic.append(child.lineno)
            for name in imported(child):
                own = ours(name)
                if own is not None:
                    (module.lazy if inner else module.eager).add(own)
                elif name.split(".")[0] not in sys.stdlib_module_names and name != "__future__":
                    found = module.lazy_third_party if inner else module.third_party
                    found.setdefault(name, getattr(child, "lineno", 0))
            visit(child, inner)

    visit(ast.parse(module.path.read_text(encoding="utf-8")), False)


MODULES = _modules()


def _layer_of(name: str) -> int:
    best: tuple[int, int] | None = None  # (length of the matching entry, layer)
    for index, layer in enumerate(LAYERS):
        for entry in layer:
            inside = name == entry or (entry != "" and name.startswith(entry + "."))
            if inside and (best is None or len(entry) > best[0]):
                best = (len(entry), index)
    if best is None:
        raise AssertionError(f"module {name!r} is in no layer of tests/test_import_graph.py")
    return best[1]


def _hook_path() -> dict[str, str | None]:
    """Each module on the hook path, with the module that first imports it (None: a root)."""
    via: dict[str, str | None] = {}
    todo: list[tuple[str, str | None]] = [(root, None) for root in HOOK_ROOTS]
    while todo:
        name, parent = todo.pop(0)  # breadth first: the shortest chain is the one named
        if name in via:
            continue
        via[name] = parent
        if name:  # importing rescale_ssh.hook.matcher runs rescale_ssh/hook/__init__.py first
            todo.append((name.rpartition(".")[0], parent))
        module = MODULES[name]
        for dep in sorted(module.eager | module.lazy):
            if (name, dep) not in OFF_PATH:
                todo.append((dep, name))
    return via


def _chain(via: dict[str, str | None], name: str) -> str:
    links = [name]
    while (parent := via[links[-1]]) is not None:
        links.append(parent)
    return " -> ".join(f"{PACKAGE}.{link}".rstrip(".") for link in reversed(links))


def hook_path() -> set[str]:
    """The modules of ours a hook run may load (for the run-time checks of test_hook.py and
    test_transport.py): the hook path's, as dotted names."""
    return {f"{PACKAGE}.{name}".rstrip(".") for name in _hook_path()}


def test_every_module_is_in_a_layer_and_imports_only_downwards() -> None:
    wrong = []
    for module in MODULES.values():
        mine = _layer_of(module.name)
        for dep in sorted(module.eager | module.lazy):
            if _layer_of(dep) < mine:
                wrong.append(f"{PACKAGE}.{module.name} imports {PACKAGE}.{dep}, a layer above it")
    assert wrong == []


def test_nothing_on_the_hook_path_imports_a_third_party_package_at_module_level() -> None:
    via = _hook_path()
    found = [f"{_chain(via, name)} imports {package} (line {line})"
             for name in sorted(via) for package, line in MODULES[name].third_party.items()]
    assert found == []


def test_the_hook_paths_lazy_third_party_imports_are_the_listed_ones() -> None:
    via = _hook_path()
    found = {(name, package) for name in via for package in MODULES[name].lazy_third_party}
    assert sorted(found - set(LAZY_THIRD_PARTY)) == [], "not in LAZY_THIRD_PARTY"
    assert sorted(set(LAZY_THIRD_PARTY) - found) == [], "in LAZY_THIRD_PARTY, no longer found"


def test_no_module_on_the_hook_path_imports_by_name() -> None:
    """importlib.import_module / __import__ would hide an import from this walk."""
    via = _hook_path()
    assert [f"{_chain(via, name)} (lines {MODULES[name].dynamic})" for name in sorted(via)
            if MODULES[name].dynamic] == []


def test_the_hook_path_is_the_hook_room_and_the_listed_modules() -> None:
    via = _hook_path()
    listed = {name for names in HOOK_PATH_OUTSIDE.values() for name in names}
    unlisted = [_chain(via, name) for name in sorted(via)
                if not (name == "hook" or name.startswith("hook.")) and name not in listed]
    assert unlisted == [], "on the hook path but not in HOOK_PATH_OUTSIDE"
    assert sorted(listed - set(via)) == [], "listed in HOOK_PATH_OUTSIDE, no longer on the path"
    assert sorted(name for name in MODULES if name.startswith("hook.") and name not in via) \
        == [], "in hook/ but not run by ssh"


def test_the_off_path_imports_are_real_lazy_imports() -> None:
    for importer, imported in OFF_PATH:
        assert imported in MODULES[importer].lazy, (importer, imported)
        assert imported not in MODULES[importer].eager, (importer, imported)


def test_the_graph_walk_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The walker itself, on a probe module placed as src/rescale_ssh/hook/probe.py would be:
    third-party at module level and in a function, relative imports, the else branch of
    ``if TYPE_CHECKING``, and imports by name."""
    path = tmp_path / "probe.py"
    path.write_text(
        "import os\nimport typer\nfrom rescale_ssh import paths\nfrom . import jobcache\n"
        "from ..sshconfig import mux\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import cryptography\nelse:\n    import click\n"
        "def f():\n    import requests\n    from rescale_ssh.hook import matcher\n"
        "    return __import__('x'), importlib.import_module('y')\n", encoding="utf-8")
    module = Module("hook.probe", path)
    _read(module, MODULES)
    assert module.third_party == {"typer": 2, "click": 10}
    assert module.lazy_third_party == {"requests": 12}
    assert module.eager == {"paths", "hook.jobcache", "sshconfig.mux"}
    assert module.lazy == {"hook.matcher"}
    assert module.dynamic == [14, 14]


@pytest.mark.parametrize("chain_end", ["platform.transport_requests", "keys.keypair"])
def test_a_third_party_module_would_be_named_with_its_chain(chain_end: str) -> None:
    """Without its OFF_PATH entry, each heavy module is reached and named with its chain."""
    edge = next(key for key in OFF_PATH if key[1] == chain_end)
    saved = OFF_PATH.pop(edge)
    try:
        via = _hook_path()
    finally:
        OFF_PATH[edge] = saved
    assert chain_end in via
    chain = _chain(via, chain_end)
    assert chain.startswith(f"{PACKAGE}.hook.matcher -> ")
    assert chain.endswith(f"{PACKAGE}.{chain_end}")
    assert MODULES[chain_end].third_party  # requests / cryptography, at module level
