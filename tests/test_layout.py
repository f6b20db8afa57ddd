"""The layout keeps one home per concept: result paths live in `ddrank_steps.paths` only,
and every stage module under `ddrank_steps/stages/` is the command of exactly one rule."""

from __future__ import annotations

import re
from pathlib import Path

from ddrank_steps import paths

REPO = Path(__file__).resolve().parents[1]
RULE_FILES = [REPO / "workflow" / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
PATTERNS = {name: value for name, value in vars(paths).items() if name.isupper()}


def code_files() -> list[Path]:
    return [*RULE_FILES, *sorted((REPO / "ddrank_steps").rglob("*.py"))]


def test_every_result_path_pattern_is_written_once():
    """Quoted `results/...` strings (logs aside, each named once in its rule) stand only
    in ddrank_steps/paths.py."""
    quoted = re.compile(r"""["']results/(?!logs/)""")
    outside = [
        f"{path.relative_to(REPO)}:{i}"
        for path in code_files()
        if path != REPO / "ddrank_steps" / "paths.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if quoted.search(line)
    ]
    assert outside == []
    assert len(set(PATTERNS.values())) == len(PATTERNS)


def test_every_rule_output_comes_from_the_path_table():
    text = "\n".join(path.read_text() for path in RULE_FILES)
    used = set(re.findall(r"paths\.([A-Z_]+)", text))
    assert used == set(PATTERNS)


def test_each_stage_module_is_the_command_of_one_rule():
    text = "\n".join(path.read_text() for path in RULE_FILES)
    # the training rules start the train stage through job_policy.launcher (directly or
    # under torchrun), which holds its command
    assert "job_policy.launcher(" in text
    text += (REPO / "ddrank_steps" / "runtime" / "job_policy.py").read_text()
    commanded = re.findall(r"-m ddrank_steps\.stages\.(\w+)", text)
    stages = {p.stem for p in (REPO / "ddrank_steps" / "stages").glob("*.py")} - {"__init__"}
    assert set(commanded) == stages
