"""Reporting: what people read. Score files as records (`score_records`), ranks and ties
(`standings`) from the paired comparison (`paired`), the figures (`figure_output` for what
they share; `score_figures`, `run_figures`, `gallery_figure`) and the self-contained HTML
page (`html_page`).

A library layer: may import the metric registry, data, runtime and the core modules;
never planning, training, stages or api.
"""
