"""How long a no-change `snakemake --cores 2` takes: the demo, and a generated config of
about 1,000 jobs, each with the stored plan (warm) and without it (cold: planned and
checked again, torch imported), and Snakemake's own start (`snakemake --version`) for
scale.

Each case gets a results tree in a temporary folder in which nothing is left to do:
`snakemake --touch` marks every job's outputs done, so no training runs. With
`--baseline REV`, the same is timed for the workflow as it was at git revision REV (an
exported copy of it, with its own touched tree), in the same process.

    python benchmarks/bench_planning.py
    python benchmarks/bench_planning.py --baseline cc4c2d3 --repeats 5
    python benchmarks/bench_planning.py --stub-scontrol   # see README: a SLURM client
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(".snakemake") / "ddrank" / "plan.pickle"


def big_config(ipcs: int) -> dict:
    """The demo's datasets and protocols, with 3 reference sets x `ipcs` IPCs as methods,
    each scored by LRS-hard and accuracy: about 1,000 jobs at 20 IPCs."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["methods"] = {
        f"{kind}-ipc{ipc}": {
            "dataset": "digits",
            "ipc": ipc,
            "images": f"reference:{kind}",
            "metrics": {
                "lrs_hard": {"protocol": "digits-dsa"},
                "accuracy": {"protocol": "digits-kd"},
            },
        }
        for kind in ("random", "herding", "kmeans")
        for ipc in range(1, ipcs + 1)
    }
    return config


class Tree:
    """A working directory for one workflow copy and config, every job marked done."""

    def __init__(self, root: Path, code: Path, config: dict, env: dict):
        self.root, self.code, self.env = root, code, {**env, "PYTHONPATH": str(code)}
        root.mkdir(parents=True)
        self.config = root / "config.yaml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.jobs = self.count_jobs()
        self.mark_done()
        assert "Nothing to be done" in self.snakemake("--cores", "2"), "jobs left to do"

    def snakemake(self, *args: str) -> str:
        cmd = [
            *(sys.executable, "-m", "snakemake"),
            *("--snakefile", str(self.code / "workflow" / "Snakefile")),
            *("--directory", str(self.root), "--configfile", str(self.config), *args),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        return proc.stdout + proc.stderr

    def mark_done(self) -> None:
        """Every output as an empty file (a folder for the `directory()` ones, whose
        names have no suffix), then `--touch` to date them in the DAG's order."""
        lines = self.snakemake("--summary").splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("output_file\t"))
        for line in lines[header + 1 :]:
            path = self.root / line.split("\t", 1)[0]
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            else:
                path.mkdir(parents=True, exist_ok=True)
        self.snakemake("--touch", "--cores", "2", "--quiet", "all")

    def count_jobs(self) -> int:
        text = self.snakemake("--dry-run", "--cores", "2")
        return int(re.search(r"^total\s+(\d+)", text, re.M).group(1))

    def no_change(self, cold: bool) -> float:
        """Seconds of one no-change run; `cold` removes the stored plan first."""
        if cold:
            (self.root / CACHE).unlink(missing_ok=True)
        start = time.perf_counter()
        text = self.snakemake("--cores", "2")
        seconds = time.perf_counter() - start
        assert "Nothing to be done" in text, text[-2000:]
        return seconds


def timed(fn, repeats: int) -> tuple[float, float]:
    """(best, median) seconds of `repeats` calls: on a shared machine the best is the
    run least slowed by others, the median says how noisy it was."""
    times = [fn() for _ in range(repeats)]
    return min(times), statistics.median(times)


def export(rev: str, into: Path) -> Path:
    """The repository's files at `rev`, without history, to run the workflow from."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def stub_scontrol(folder: Path) -> str:
    """A PATH whose first `scontrol` fails at once (see README)."""
    folder.mkdir()
    stub = folder / "scontrol"
    stub.write_text("#!/bin/sh\nexit 1\n")
    stub.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ipcs", type=int, default=20, help="IPCs per reference kind")
    parser.add_argument("--baseline", metavar="REV", help="also time the workflow at REV")
    parser.add_argument(
        "--stub-scontrol",
        action="store_true",
        help="put a failing `scontrol` first on PATH (a SLURM client without a controller "
        "makes every Snakemake start wait for it)",
    )
    args = parser.parse_args(argv)

    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    with tempfile.TemporaryDirectory(prefix="bench-planning-") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ)
        if args.stub_scontrol:
            env["PATH"] = stub_scontrol(tmp / "bin")
        versions = {"ours": REPO}
        if args.baseline:
            versions[f"at {args.baseline}"] = export(args.baseline, tmp / "baseline")
        floor = timed(
            lambda: _seconds([sys.executable, "-m", "snakemake", "--version"], env),
            args.repeats,
        )
        print(f"snakemake --version: best {floor[0]:.2f} s, median {floor[1]:.2f} s")
        print(
            f"{'config':<12} {'jobs':>5} {'workflow':<14} {'path':<6} "
            f"{'best s':>7} {'median s':>8} {'/ cold':>7}"
        )
        trees = {
            (name, version): Tree(
                tmp / f"{name}-{version.replace(' ', '-')}", code, copy.deepcopy(config), env
            )
            for name, config in (("demo", demo), ("generated", big_config(args.ipcs)))
            for version, code in versions.items()
        }
        # one of each per round, so that a change in the machine's load hits all alike
        times: dict[tuple, list[float]] = {}
        for _ in range(args.repeats):
            for (name, version), tree in trees.items():
                times.setdefault((name, version, "cold"), []).append(tree.no_change(True))
                if tree.code == REPO:  # a baseline without a stored plan has no warm path
                    times.setdefault((name, version, "warm"), []).append(tree.no_change(False))
        for (name, version, path), seconds in times.items():
            best, cold = min(seconds), min(times[(name, version, "cold")])
            print(
                f"{name:<12} {trees[(name, version)].jobs:>5} {version:<14} {path:<6} "
                f"{best:>7.2f} {statistics.median(seconds):>8.2f} {best / cold:>6.2f}x"
            )


def _seconds(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, capture_output=True, check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
