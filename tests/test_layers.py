"""The package's layers, as docs/architecture.md draws them: each layer imports only the
layers below it, and the size rules that keep a module readable hold.

Read from the sources (every import statement, inside functions too), so a lazy import
that crosses a layer is caught as well as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "ddrank_steps"
PACKAGE = PACKAGE_DIR.name

CORE = "core"  # the modules directly in ddrank_steps/
LIBRARY = {"data", "models", "augment", "transforms", "metric_registry", "training", "reporting"}
# layer -> the layers it may import (its own always). Lower layers never reach up: nothing
# in the library imports planning, stages or api, and only api imports api.
ALLOWED = {
    CORE: set(),
    "runtime": {CORE},
    "models": {CORE, "runtime"},
    "transforms": {CORE, "runtime", "data"},
    "augment": {CORE, "runtime", "models"},
    "data": {CORE, "runtime"},
    "metric_registry": {CORE},
    "training": {CORE, "runtime", "data", "models", "augment", "transforms"},
    "reporting": {CORE, "runtime", "data", "metric_registry"},
    "planning": {CORE, "runtime", *LIBRARY},
    "stages": {CORE, "runtime", *LIBRARY},
    "api": {CORE, "runtime", "planning", *LIBRARY},
    # DD-Ranking's drop-in import paths, thin re-exports of api
    "metrics": {"api"},
    "config": {"api"},
}
MAX_TOP_LEVEL_MODULES = 10
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return CORE  # the package itself
    if (parts[1] in ALLOWED and (PACKAGE_DIR / parts[1]).is_dir()) or parts[1] == "config":
        return parts[1]
    return CORE


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from ddrank_steps import paths` imports the module ddrank_steps.paths
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name.split(".")[0] == PACKAGE}


def sources() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def test_every_package_folder_has_a_layer():
    folders = {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").is_file()}
    assert folders <= set(ALLOWED), f"give {sorted(folders - set(ALLOWED))} a layer"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_a_module_imports_only_the_layers_below_it(path):
    layer = layer_of(module_name(path))
    allowed = ALLOWED[layer] | {layer}
    crossing = sorted(
        f"{name} ({layer_of(name)})"
        for name in imported_modules(path)
        if layer_of(name) not in allowed
    )
    assert not crossing, f"{layer} may import only {sorted(allowed)}; it imports {crossing}"


def test_the_library_never_imports_stages_planning_or_api():
    # the rule the table above encodes, said plainly: checked on its own so that a change
    # to ALLOWED cannot quietly give the library a way up
    for layer in LIBRARY | {"runtime", CORE}:
        assert not ALLOWED[layer] & {"stages", "planning", "api"}, layer


def test_few_modules_stand_directly_in_the_package():
    modules = [p.name for p in PACKAGE_DIR.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, sorted(modules)


def test_no_module_is_too_long():
    long = {
        str(p.relative_to(PACKAGE_DIR)): n
        for p in sources()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these modules (lines): {long}"


def test_no_function_is_too_long():
    long = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(
                        f"{path.relative_to(PACKAGE_DIR)}:{node.lineno} {node.name} {lines}"
                    )
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_drop_in_import_paths_still_work():
    from ddrank_steps.config import Config
    from ddrank_steps.metrics import (
        AugmentationRobustScore,
        GeneralEvaluator,
        LabelRobustScoreHard,
        LabelRobustScoreSoft,
    )

    assert Config.__module__ == "ddrank_steps.api.config"
    for cls in (
        LabelRobustScoreHard,
        LabelRobustScoreSoft,
        AugmentationRobustScore,
        GeneralEvaluator,
    ):
        assert cls.__module__ == "ddrank_steps.api.evaluators"
