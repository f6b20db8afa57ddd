"""benchmarks/gpu_check.py's reading of each benchmark's output: one markdown table per
benchmark with the columns of its table in benchmarks/README.md, and what the figures say
about the defaults that were guesses for the GPU (`concurrent_lrs: auto`,
`precision.CHANNELS_LAST`, `precision.EVAL_BATCH`).

Each reader takes the step's stdout and the row's first three cells (date, machine,
command) and returns the table's lines; a line it cannot read leaves the table with the
cells it has, and the raw log beside it says why.
"""

from __future__ import annotations

import re

NUM = r"([-\d.]+|nan)"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def engine(out: str, first: list[str]) -> list[str]:
    found = re.findall(rf"^\s*(\d+)\s+{NUM}\s+{NUM}\s+{NUM}x\s*$", out, re.M)
    header = ["date", "machine", "command"] + [f"IPC {ipc}" for ipc, *_ in found]
    return _table(header, [first + [f"{x}×" for *_, x in found]])


def transforms(out: str, first: list[str]) -> list[str]:
    base = re.search(rf"DataLoader:\s+{NUM} ms", out)
    ours = re.search(rf"device batch:\s+{NUM} ms", out)
    ratios = re.search(rf"ours / baseline: {NUM}x; transforms / step: {NUM}x", out)
    cells = [f"{m.group(1)} ms" if m else "?" for m in (base, ours)]
    cells += [f"{r}×" for r in ratios.groups()] if ratios else ["?", "?"]
    header = ["date", "machine", "command", "per-image DataLoader", "ours"]
    return _table([*header, "ours / baseline", "ours / step"], [first + cells])


def concurrent_rows(out: str) -> list[tuple[str, ...]]:
    """(ipc, sequential, streams, stacked, streams x, stacked x, gap streams, gap stacked)."""
    pattern = rf"^\s*(\d+)\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}x\s+{NUM}x\s+{NUM}\s+{NUM}\s*$"
    return re.findall(pattern, out, re.M)


def concurrent(out: str, first: list[str]) -> list[str]:
    header = ["date", "machine", "command", "IPC", "sequential", "streams", "stacked"]
    header += ["streams ×", "stacked ×", "max Δacc streams / stacked"]
    rows = [
        [*first, ipc, f"{a} s", f"{b} s", f"{c} s", f"{x}×", f"{y}×", f"{g} / {h}"]
        for ipc, a, b, c, x, y, g, h in concurrent_rows(out)
    ]
    return _table(header, rows)


def reference_loop(out: str, first: list[str]) -> list[str]:
    found = re.findall(rf"^\s*(\d+)\s+{NUM}\s+{NUM}\s+{NUM}x\s+reference-style", out, re.M)
    rows = [[*first, ipc, f"{a} s", f"{b} s", f"{x}×"] for ipc, a, b, x in found]
    header = ["date", "machine", "command", "IPC", "reference-style", "engine", "speed-up"]
    return _table(header, rows)


def passthrough(out: str, first: list[str]) -> list[str]:
    """The script's own markdown tables (precision, P3), after a line naming the run."""
    kept = [line for line in out.splitlines() if line.startswith(("|", "## ", "P3 "))]
    return [f"{first[0]}, {first[1]}: `{first[2].strip('`')}`", *kept]


def pytest_outcomes(out: str, first: list[str]) -> list[str]:
    """One row per test from pytest's `-rA` summary: PASSED, FAILED, SKIPPED (reason)."""
    rows = []
    for line in out.splitlines():
        m = re.match(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED)\s+(?:\[\d+\]\s+)?(.*)$", line)
        if m:
            rows.append([m.group(2).replace("|", "/"), m.group(1)])
    return _table(["test", "outcome"], rows or [["(no summary: see the log)", "?"]])


READERS = {
    "cuda-tests": pytest_outcomes,
    "engine": engine,
    "transforms": transforms,
    "concurrent": concurrent,
    "precision": passthrough,
    "reference-loop": reference_loop,
    "p3": passthrough,
}


def _markdown_rows(out: str, title: str) -> list[list[str]]:
    """The data rows of the table under the `## title` line of bench_precision's output."""
    rows, inside = [], False
    for line in out.splitlines():
        if line.startswith("## "):
            inside = line.startswith(f"## {title}")
        elif inside and line.startswith("|") and not line.startswith(("|---", "| precision")):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def advice(outputs: dict[str, str], device: str) -> list[str]:
    """What the figures support changing, one line per default."""
    lines = []
    rows = concurrent_rows(outputs.get("concurrent", ""))
    gains = [float(r[4]) for r in rows if r[4] != "nan"]
    if not gains:
        lines.append("concurrent_lrs auto: no bench_concurrent figures; leave it as it is.")
    elif device != "cuda":
        lines.append(f"concurrent_lrs auto: streams × {gains} on {device}; auto decides the GPU.")
    elif min(gains) >= 1.1:
        lines.append(f"concurrent_lrs auto: streams × {gains} ≥ 1.1: keep together on the GPU.")
    elif max(gains) <= 0.95:
        lines.append(
            f"concurrent_lrs auto: streams × {gains} ≤ 0.95: change auto to one after the "
            "other on the GPU (job_policy.lrs_train_together)."
        )
    else:
        lines.append(f"concurrent_lrs auto: streams × {gains}: no clear gain either way.")
    for cells in _markdown_rows(outputs.get("precision", ""), "layout"):
        ratio = float(cells[-1].rstrip("x"))
        verdict = "add to" if ratio < 0.9 else "keep out of"
        lines.append(
            f"channels_last ({device}, {cells[0]}): {ratio:.2f}× contiguous: {verdict} "
            "precision.CHANNELS_LAST."
        )
    lines += _eval_advice(outputs.get("precision", ""), device)
    return lines


def _eval_advice(out: str, device: str) -> list[str]:
    header = next((line for line in out.splitlines() if line.startswith("| precision | batch")), "")
    batches = [int(b) for b in re.findall(r"batch (\d+)", header)]
    lines = []
    for cells in _markdown_rows(out, "eval"):
        speeds = dict(zip(batches, (float(c) for c in cells[1:]), strict=False))
        if not speeds:
            continue
        best = max(speeds, key=speeds.get)
        at_default = speeds.get(1000)
        gain = speeds[best] / at_default if at_default else float("nan")
        if cells[0] == "fp32":  # another batch could round a logit differently: new keys
            verdict = "keep 1,000, the batch every fp32 result was computed with"
        elif best != 1000 and gain >= 1.1:
            verdict = f"set precision.EVAL_BATCH[({device!r}, {cells[0]!r})] = {best}"
        else:
            verdict = "keep the default 1,000"
        lines.append(
            f"eval batch ({device}, {cells[0]}): best {best} ({gain:.2f}× batch 1000): {verdict}."
        )
    return lines
