"""The package's shape, checked from its source with :mod:`ast` (no import, no service).

* the import graph of ``asyncmq_cloud`` has no cycle: every ``import``/``from ... import``
  counts, also those inside functions (a lazy import still couples two modules); only
  imports under ``if TYPE_CHECKING:`` are left out, since they never run;
* no module dispatches on a class name: ``type(x).__name__`` (or ``x.__class__.__name__``)
  is never compared, matched or tested with ``startswith``/``endswith``/``in``; printing
  it in a message is fine.

* no package module is over 400 lines and no function over 60 (ruff's complexity rule
  C901 is on as well);
* no ``getattr``/``hasattr`` probes a component for an undeclared capability: the few
  calls left are listed in ``ALLOWED_PROBES`` with their reason.

The ``test_check_*`` tests feed each check a small broken input to show that it fails.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "asyncmq_cloud"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


# -- the import graph ------------------------------------------------------------------
def module_name(path: Path, root: Path = ROOT) -> str:
    """``asyncmq_cloud/a/b.py`` -> ``asyncmq_cloud.a.b``; a package's ``__init__.py`` -> the package."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement below ``node``, except those under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _imports(ast.Module(body=[other], type_ignores=[]))
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _imports(child)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def import_graph(modules: dict[str, tuple[ast.Module, bool]], package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports.

    ``from P import name`` is an edge to ``P.name`` when that is a module, else to ``P``.
    Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``; those implicit
    edges are not counted (a module of a package may import its siblings through it).

    Args:
        modules: module name -> (its parsed source, whether it is a package ``__init__``).
        package: only edges into this package are kept.
    """
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (tree, is_package) in modules.items():
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                source = _absolute(node, name, is_package)
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            for target in targets:
                while target and target not in modules:  # `import a.b.c` of a non-module name: its module
                    target = target.rpartition(".")[0]
                if target and target != name and target.split(".")[0] == package:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or ``None``."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def _package_modules() -> dict[str, tuple[ast.Module, bool]]:
    return {
        module_name(path): (ast.parse(path.read_text(), str(path)), path.name == "__init__.py")
        for path in sorted(ROOT.rglob("*.py"))
    }


# -- class-name dispatch ----------------------------------------------------------------
def _is_class_name(node: ast.AST, held: frozenset[str] = frozenset()) -> bool:
    """``type(x).__name__``, ``x.__class__.__name__``, ``type(x).__qualname__``, or a name in ``held``."""
    if isinstance(node, ast.Name):
        return node.id in held
    if not isinstance(node, ast.Attribute) or node.attr not in ("__name__", "__qualname__"):
        return False
    owner = node.value
    is_type_call = isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "type"
    return is_type_call or (isinstance(owner, ast.Attribute) and owner.attr == "__class__")


def class_name_dispatch(tree: ast.AST) -> list[int]:
    """Lines where a class name is compared, matched or tested (dispatch, not display).

    A variable assigned a class name (``kind = type(x).__name__``) counts as one too.
    """
    held = frozenset(
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _is_class_name(node.value)
        for target in node.targets
        if isinstance(target, ast.Name)
    )
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            hit = any(_is_class_name(n, held) for n in (node.left, *node.comparators))
        elif isinstance(node, ast.Match):
            hit = _is_class_name(node.subject, held)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            tests = ("startswith", "endswith", "removeprefix", "removesuffix")
            hit = node.func.attr in tests and _is_class_name(node.func.value, held)
        elif isinstance(node, ast.Subscript):  # table[type(x).__name__]
            hit = _is_class_name(node.slice, held)
        else:
            hit = False
        if hit:
            lines.append(getattr(node, "lineno", 0))
    return sorted(lines)


# -- the tests ---------------------------------------------------------------------------
def test_the_package_has_no_import_cycle() -> None:
    modules = _package_modules()
    graph = import_graph(modules)
    assert len(graph) > 40 and sum(map(len, graph.values())) > 60, "the parser found too few modules/imports"
    assert f"{PACKAGE}.core.protocols" in graph[f"{PACKAGE}.core.lifecycle"], "a known edge is missing"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_dispatches_on_a_class_name() -> None:
    found = {name: lines for name, (tree, _) in _package_modules().items() if (lines := class_name_dispatch(tree))}
    assert not found, f"class-name dispatch (use isinstance or a public attribute): {found}"


def _graph_of(sources: dict[str, str]) -> dict[str, set[str]]:
    modules = {name: (ast.parse(text), name.count(".") == 0 or name.endswith(".pkg")) for name, text in sources.items()}
    return import_graph(modules, package="p")


def test_check_import_cycle_sees_lazy_and_relative_imports_but_not_type_checking() -> None:
    lazy = _graph_of(
        {
            "p": "",
            "p.a": "from p import b\n",
            "p.b": "def f():\n    from .c import g\n",
            "p.c": "import p.a.x\n",
        }
    )
    assert lazy["p.a"] == {"p.b"} and lazy["p.b"] == {"p.c"} and lazy["p.c"] == {"p.a"}
    assert find_cycle(lazy) == ["p.a", "p.b", "p.c", "p.a"]
    typing_only = _graph_of(
        {"p": "", "p.a": "import p.b\n", "p.b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import p.a\n"}
    )
    assert typing_only["p.b"] == set() and find_cycle(typing_only) is None


def test_check_class_name_dispatch_flags_comparisons_not_messages() -> None:
    assert class_name_dispatch(ast.parse("if type(x).__name__ == 'KafkaTransport':\n    pass\n")) == [1]
    assert class_name_dispatch(ast.parse("ok = type(x).__name__.startswith('Redis')\n")) == [1]
    assert class_name_dispatch(ast.parse("ok = x.__class__.__name__ in names\n")) == [1]
    assert class_name_dispatch(ast.parse("kind = type(x).__name__\nif kind == 'A':\n    pass\n")) == [2]
    assert class_name_dispatch(ast.parse("print(f'{type(x).__name__}: {x}')\n")) == []


# -- size limits and capability probes ------------------------------------------------------
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
#: The only getattr/hasattr calls the package may make: (module, the call's first argument, why).
#: Each is on something other than a component: a module (lazy export), the object's own
#: partly-built self in ``__del__``, an SDK exception, an SDK config or client object.
ALLOWED_PROBES: tuple[tuple[str, str, str], ...] = (
    ("asyncmq_cloud", "module", "the lazy export of a backend class by name"),
    ("asyncmq_cloud.aws", "self.aio_config", "botocore's AioConfig: whether the user set retries"),
    ("asyncmq_cloud._component", "self", "__del__ of a partly-built object (constructor raised)"),
    ("asyncmq_cloud.backends._preset", "self.settings", "a preset's own settings dataclass, read by field name"),
    ("asyncmq_cloud.transports._kafka_errors", "exc", "aiokafka errors carry a retriable class flag"),
    ("asyncmq_cloud.transports._kafka_errors", "client", "aiokafka admin clients close(), others stop()"),
    ("asyncmq_cloud.core.validation", "function", "AsyncMQ's settings bind json.dumps: the function behind it"),
    ("asyncmq_cloud._aws_user_agent", "client", "botocore's private User-Agent builder, absent in other versions"),
    ("asyncmq_cloud._aws_user_agent", "creator", "that builder's methods and client features, checked likewise"),
    (
        "asyncmq_cloud.transports._sqs_direct",
        "obj",
        "botocore's private emitter, HTTP session, credentials and API call: absent in other versions, "
        "where every SendMessage goes through botocore",
    ),
    (
        "asyncmq_cloud.tracing",
        "obj",
        "the OpenTelemetry SDK's tracer, sampler, processors and limits: read to build the lean span, "
        "absent or different in other versions, where the span goes through Tracer.start_span",
    ),
)


def module_lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def long_functions(tree: ast.AST, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """``(name, first line, length)`` of every function longer than ``limit`` lines (docstring included)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > limit:
                found.append((node.name, node.lineno, length))
    return found


def probes(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, first argument)`` of every ``getattr``/``hasattr`` call."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            found.append((node.lineno, ast.unparse(node.args[0]) if node.args else ""))
    return found


def test_no_package_module_is_over_the_line_limit() -> None:
    over = {
        str(path.relative_to(ROOT.parent)): lines
        for path in sorted(ROOT.rglob("*.py"))
        if (lines := module_lines(path)) > MAX_MODULE_LINES
    }
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split them by responsibility): {over}"


def test_no_package_function_is_over_the_line_limit() -> None:
    over = {name: found for name, (tree, _) in _package_modules().items() if (found := long_functions(tree))}
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: {over}"


def test_no_capability_probe_on_components() -> None:
    allowed = {(module, arg) for module, arg, _ in ALLOWED_PROBES}
    found = {
        (name, arg): line
        for name, (tree, _) in _package_modules().items()
        for line, arg in probes(tree)
        if (name, arg) not in allowed
    }
    assert not found, (
        f"getattr/hasattr outside the allow-list (declare the capability in core/protocols.py instead): {found}"
    )
    present = {(name, arg) for name, (tree, _) in _package_modules().items() for _, arg in probes(tree)}
    stale = allowed - present
    assert not stale, f"allow-list entries no longer in the code (remove them): {stale}"


def test_check_limits_and_probes_fail_on_bad_input() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    assert long_functions(ast.parse(f"def f():\n{body}\n")) == [("f", 1, 62)]
    assert long_functions(ast.parse("@deco\nasync def g():\n    return 1\n")) == []
    found = probes(ast.parse("if getattr(self.transport, 'redelivers', True):\n    pass\nhasattr(store, 'x')\n"))
    assert found == [(1, "self.transport"), (3, "store")]
