"""What every figure shares: matplotlib without a display, one style, reproducible files,
and a figure that says what is missing instead of a crash.

Each figure is written as SVG (embedded in the reports), PDF and PNG (for papers), each
atomically. Files carry no date and SVG ids are salted with a constant, so the same
inputs give the same bytes.
"""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")  # files only; no display on a cluster node

import matplotlib.pyplot as plt

from ddrank_steps.runtime.atomic_write import atomic_path

matplotlib.rcParams.update(
    {
        "svg.hashsalt": "ddrank",
        "svg.fonttype": "none",  # text as text: small SVGs, searchable; a sans-serif is enough
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "figure.dpi": 100,
    }
)

PNG_DPI = 200
METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {}}


def save(fig, files: dict[str, str]) -> None:
    """Write the figure to each format's file (`svg`, `pdf`, `png`) and close it."""
    for fmt, path in files.items():
        with atomic_path(path) as tmp:
            fig.savefig(
                tmp,
                format=fmt,
                metadata=METADATA[fmt],
                dpi=PNG_DPI if fmt == "png" else None,
                bbox_inches="tight",
            )
    plt.close(fig)


def message(title: str, lines: list[str]):
    """A figure that only says what could not be drawn, and why."""
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.25 * len(lines)))
    ax.axis("off")
    text = "\n".join(textwrap.fill(line, 90) for line in lines)
    ax.set_title(title, loc="left")
    ax.text(0, 1, text, va="top", ha="left", transform=ax.transAxes, family="monospace")
    return fig


def add_output_args(p) -> None:
    """A plot stage's output options: the figure's file in each format."""
    for fmt in ("svg", "pdf", "png"):
        p.add_argument(f"--{fmt}", required=True, help=f"the figure as {fmt.upper()}")


def output_files(args) -> dict[str, str]:
    return {"svg": args.svg, "pdf": args.pdf, "png": args.png}
