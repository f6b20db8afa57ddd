"""The package files a job runs, declared as its inputs so that a code change reruns
exactly the jobs that run the changed code.

Read by the workflow while it builds the DAG, so plain Python (no torch).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def stage_sources(stage: str) -> list[str]:
    """The files the stage `ddrank_steps.stages.<stage>` runs."""
    return module_sources(f"ddrank_steps.stages.{stage}")


def train_sources(run_protocol: dict) -> list[str]:
    """The files a training job runs for its run protocol."""
    return stage_sources("train")


def module_sources(module: str) -> list[str]:
    """The package files a stage's module runs: itself and every ddrank_steps module it
    imports, transitively. Rules list them as inputs so a code change reruns its jobs."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        if parts[0] != "ddrank_steps":
            continue
        base = PACKAGE_DIR.joinpath(*parts[1:])
        candidates = [base / "__init__.py", base.with_suffix(".py")]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None or path in seen:
            continue
        seen.add(path)
        for i in range(1, len(parts)):  # parent packages' __init__ run on import too
            todo.append(".".join(parts[:i]))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                todo.append(node.module)
                todo.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return sorted(str(p) for p in seen)
