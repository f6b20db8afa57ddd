"""The workflow's own report, `results/report.html`: one self-contained page (no script,
no network: every figure is an SVG inside the page) that opens offline.

Per leaderboard group: the table (ranks, ties, the paired comparison with the next rank,
scores and terms), the group's score figure and each method's term figure; then the LR
curves of every run the scores read, once each, by set; then every method's set beside a
random subset. Whatever is
missing (a field of an older score file, a figure not drawn) is said where it would be.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import pandas as pd

from ddrank_steps import metric_registry, paths
from ddrank_steps.reporting.score_records import Group, Score

UNITS = "LRS and ARS in [0, 100]; accuracies and their differences as fractions."
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;
color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
td,th{padding:3px 8px;text-align:right;border-bottom:1px solid #eee;white-space:nowrap}
th{background:#f4f4f4}td.text,th.text{text-align:left}
.tie{color:#a15c00}.missing{color:#b00020}.muted{color:#666;font-size:.9em}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figure.half{max-width:48%}.wide{overflow-x:auto}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.8em;color:#555}details{margin:.6em 0}summary{cursor:pointer}
"""


def figure_html(stem: str, caption: str, base: Path, css: str = "") -> str:
    """The figure's SVG in the page (a data URI, so ids of separate SVGs never clash),
    with links to its PDF and PNG beside the report; a note when it was not drawn."""
    files = paths.figure_files(stem)
    svg = Path(files["svg"])
    if not svg.is_file():
        return f"<p class='missing'>figure not drawn: {html.escape(files['svg'])}</p>"
    data = base64.b64encode(svg.read_bytes()).decode("ascii")
    links = " · ".join(
        f"<a href='{html.escape(_relative(files[fmt], base))}'>{fmt.upper()}</a>"
        for fmt in ("pdf", "png")
    )
    return (
        f"<figure class='{css}'><img alt='{html.escape(caption)}'"
        f" src='data:image/svg+xml;base64,{data}'>"
        f"<figcaption>{html.escape(caption)} ({links})</figcaption></figure>"
    )


def _relative(path: str, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(Path(path).resolve())


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}"
    return str(value)


def _mean_std(row: pd.Series, prefix: str) -> str:
    mean, std = row.get(f"{prefix}_mean"), row.get(f"{prefix}_std")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "<span class='missing'>missing</span>"
    return f"{_fmt(mean)} ± {_fmt(std, 2)}"


def _comparison(row: pd.Series, metric: str) -> str:
    p = row.get(f"{metric}_vs_next_p")
    rounds = row.get(f"{metric}_vs_next_rounds")
    diff = row.get(f"{metric}_vs_next_diff_mean")
    if diff is None or (isinstance(diff, float) and math.isnan(diff)):
        return "–"
    low, high = row.get(f"{metric}_vs_next_ci_low"), row.get(f"{metric}_vs_next_ci_high")
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return f"{_fmt(diff)} (rounds: {_fmt(rounds)}; too few to test)"
    return f"{_fmt(diff)} [{_fmt(low, 3)}, {_fmt(high, 3)}], p = {p:.3f}, n = {int(rounds)}"


def extra_columns(table: pd.DataFrame) -> list[str]:
    """Columns that belong to no metric and to none the report shows anyway: shown as
    they are, so a column added to the leaderboard reaches the report too."""
    prefixes = tuple(f"{m}_" for m in metric_registry.METRICS)
    shown = {"group", "rank", "tied_with", "method", "dataset", "ipc", "notes"}
    return [c for c in table.columns if c not in shown and not c.startswith(prefixes)]


def group_table(group: Group, table: pd.DataFrame) -> str:
    metric = group.metric
    if f"{metric}_group" not in table or f"{metric}_rank" not in table:
        return "<p class='missing'>the leaderboard has no ranks for this group</p>"
    rows = table[table[f"{metric}_group"] == group.label].sort_values(f"{metric}_rank")
    entry = metric_registry.METRICS.get(metric)
    quantities = list(entry.quantities) if entry else []
    terms = sorted(
        c[len(metric) + 1 : -len("_acc_mean")]
        for c in table.columns
        if c.startswith(f"{metric}_") and c.endswith("_acc_mean") and rows[c].notna().any()
    )
    extras = extra_columns(table)
    head = ["rank", "method", "tied with"]
    head += [f"{q.upper() if len(q) <= 3 else q} (mean ± std)" for q in quantities]
    head += ["vs next rank: Δ [95 % CI], paired t-test", *terms, "syn LR", *extras, "notes"]
    text_cols = {"method", "tied with", "notes"}
    out = ["<div class='wide'><table><tr>"]
    out += [f"<th class='{'text' if h in text_cols else ''}'>{html.escape(h)}</th>" for h in head]
    out.append("</tr>")
    for _, row in rows.iterrows():
        tied = row.get(f"{metric}_tied_with")
        tied = "" if not isinstance(tied, str) else tied
        cells = [
            f"<td>#{int(row[f'{metric}_rank'])}</td>",
            f"<td class='text'>{html.escape(str(row['method']))}</td>",
            f"<td class='text tie'>{html.escape('tied with ' + tied) if tied else ''}</td>",
        ]
        cells += [f"<td>{_mean_std(row, f'{metric}_{q}')}</td>" for q in quantities]
        cells.append(f"<td>{html.escape(_comparison(row, metric))}</td>")
        cells += [f"<td>{_mean_std(row, f'{metric}_{t}_acc')}</td>" for t in terms]
        cells.append(f"<td>{html.escape(str(row.get(f'{metric}_syn_lr', '')))}</td>")
        cells += [f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in extras]
        notes = row.get("notes")
        notes = notes if isinstance(notes, str) else ""
        notes = "; ".join(n for n in notes.split("; ") if n.startswith(f"{metric}:"))
        cells.append(f"<td class='text missing'>{html.escape(notes)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    return "".join(out)


def group_section(group: Group, scores: list[Score], table: pd.DataFrame, base: Path) -> str:
    anchor = group.label.replace("/", "-")
    parts = [f"<h2 id='{html.escape(anchor)}'>{html.escape(group.label)}</h2>"]
    parts.append(
        f"<p class='muted'>dataset {html.escape(group.dataset)}, IPC {group.ipc}, metric "
        f"{html.escape(group.metric)}, protocol {html.escape(group.protocol)}: "
        f"{len(scores)} method(s)</p>"
    )
    if len(scores) == 1:
        parts.append("<p class='muted'>One method in this group: nothing to compare.</p>")
    parts.append(group_table(group, table))
    parts.append(figure_html(group.figure, f"{group.label}: scores over rounds", base))
    terms = "".join(
        figure_html(
            paths.TERMS_FIGURE.format(method=s.method, metric=s.metric),
            f"{s.method}: terms of {s.metric}",
            base,
            "half",
        )
        for s in scores
    )
    parts.append(f"<details open><summary>Terms of each method</summary>{terms}</details>")
    sets = sorted({_run_set(run) for s in scores for run in _runs_of(s)})
    if sets:
        links = ", ".join(f"<a href='#runs-{html.escape(k)}'>{html.escape(k)}</a>" for k in sets)
        parts.append(f"<p class='muted'>LR curves of the runs these scores read: {links}</p>")
    else:
        parts.append("<p class='missing'>the score files list no run files</p>")
    return "".join(parts)


def _run_set(run: str) -> str:
    f = paths.run_fields(run)
    return f"{f['dataset']}-{f['set']}"


def _runs_of(score: Score) -> list[str]:
    """The score's run files that are where the workflow writes runs (an older or moved
    result may list others: their curves cannot be found), less known accuracies (no
    curve)."""
    runs = []
    for run in score.run_files():
        try:
            paths.run_fields(run)
        except ValueError:
            continue
        if not paths.is_given_run(run):
            runs.append(run)
    return runs


def runs_section(scores: list[Score], base: Path) -> str:
    """Every run any score read, once, grouped by dataset and set (shared rdm and real
    runs appear once, not once per method)."""
    by_set: dict[str, list[str]] = {}
    for s in scores:
        for run in _runs_of(s):
            runs = by_set.setdefault(_run_set(run), [])
            if run not in runs:
                runs.append(run)
    parts = [
        "<h2 id='runs'>Training runs</h2><p class='muted'>Test accuracy per epoch for each LR "
        "of a run's grid; the star is the selected point, the accuracy the scores use.</p>"
    ]
    for key in sorted(by_set):
        runs = sorted(by_set[key], key=lambda r: (paths.run_fields(r)["protocol"], r))
        curves = "".join(
            figure_html(paths.run_figure_of(run), _run_caption(run), base, "half") for run in runs
        )
        parts.append(
            f"<details id='runs-{html.escape(key)}'><summary>{html.escape(key)} "
            f"({len(runs)} run(s))</summary>{curves}</details>"
        )
    return "".join(parts)


def _run_caption(run: str) -> str:
    f = paths.run_fields(run)
    return f"{f['set']} · protocol {f['protocol']} · seed {f['seed']}"


def page(
    groups: dict[Group, list[Score]],
    table: pd.DataFrame,
    galleries: dict[str, str],
    base: Path,
    notes: list[str],
) -> str:
    """The whole report. `galleries`: method -> gallery figure stem."""
    toc = "".join(
        f"<li><a href='#{html.escape(g.label.replace('/', '-'))}'>{html.escape(g.label)}</a>"
        f" ({len(s)} method(s))</li>"
        for g, s in groups.items()
    )
    missing = ""
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        missing = f"<h2>What is missing</h2><ul class='missing'>{items}</ul>"
    sections = "".join(group_section(g, s, table, base) for g, s in groups.items())
    all_scores = [s for scores in groups.values() for s in scores]
    gallery = "".join(
        figure_html(stem, f"{method}: its set beside a random real subset", base)
        for method, stem in galleries.items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ddrank report</title>"
        f"<style>{STYLE}</style></head><body>"
        "<h1>ddrank report</h1>"
        f"<p>{html.escape(UNITS)} Methods are ranked within groups (same dataset, IPC, "
        "metric and protocol) by the metric's headline score. Each rank is compared with "
        "the next over the rounds, paired by seed (every method of a group trains with the "
        "same seeds and random subsets): Δ is the mean paired difference of the headline "
        "score, with its 95 % interval and the two-sided paired t-test's p; where p ≥ 0.05 "
        "(or fewer than 2 rounds) the two are <span class='tie'>tied</span>. "
        "config/README.md explains the test and how many rounds make it meaningful.</p>"
        f"<h2>Groups</h2><ul>{toc}</ul>{missing}{sections}{runs_section(all_scores, base)}"
        f"<h2 id='galleries'>Sets</h2>{gallery}"
        "</body></html>\n"
    )
