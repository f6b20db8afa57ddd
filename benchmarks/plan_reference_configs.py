"""Do the reference's evaluation configs import and plan? One line per config.

For every DD-Ranking YAML under FOLDER (its `eval/` tree: D4M, DATM, DC, DM, …), this
writes a tiny fake dataset in the real on-disk format where the config's data_path finds
it, runs `ddrank import-config` on it (which checks the translated config against the
schema and plans it) and, with `--dry-run`, `snakemake -n` on the written config. Nothing
trains: the fake roots are a few images, written once per (dataset, data_path).

    python benchmarks/plan_reference_configs.py /path/to/eval
    python benchmarks/plan_reference_configs.py /path/to/eval --relative-paths --cached-weights
    python benchmarks/plan_reference_configs.py /path/to/eval --dry-run --stub-scontrol

An absolute author path (`/home/someone/…`) fails on purpose, with an error naming the
key: `--relative-paths` moves every absolute path under the temporary root instead, so
the count with and without the author's paths can both be reported. `--cached-weights`
puts placeholder torchvision weights in a temporary TORCH_HOME, as on a machine that has
downloaded them (the reference builds such teachers with pretrained=True); without it the
temporary TORCH_HOME is empty, so the result never depends on this machine's cache.

The metric is the config's evaluator class, read from its keys as the reference's
configs are written: `label_type` or a single `batch_size` is ARS, a soft-label key is
LRS-soft, anything else LRS-hard.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the fake-format writers the tests use

from bench_planning import stub_scontrol  # noqa: E402
from format_writers import write_cached_weights, write_reference_root  # noqa: E402

from ddrank_steps.api.ddrank_command import main as ddrank  # noqa: E402

SOFT_KEYS = ("soft_label_mode", "soft_label_criterion", "teacher_model_names")
# torchvision names of the teachers the reference's configs use, for --cached-weights
TEACHER_ARCHS = ("resnet18", "mobilenet_v2", "shufflenet_v2_x0_5", "efficientnet_b0")


def metric_of(ref: dict) -> str:
    if "label_type" in ref or ("batch_size" in ref and "syn_batch_size" not in ref):
        return "ars"
    return "lrs_soft" if any(k in ref for k in SOFT_KEYS) else "lrs_hard"


def relocated(ref: dict, root: Path) -> dict:
    """Every absolute path of the config moved under `root` (/home/x/d -> root/home/x/d)."""
    return {
        key: str(root / value.lstrip("/"))
        if isinstance(value, str) and value.startswith("/")
        else value
        for key, value in ref.items()
    }


def check(source: Path, name: str, work: Path, args, env: dict) -> tuple[bool, str]:
    """(planned, the first error line) for one reference config, run from `work`."""
    ref = yaml.safe_load(source.read_text())
    given = source  # imported as it is, so that errors name the reference's own file
    if args.relative_paths:
        ref = relocated(ref, work)
        given = work / "ref" / f"{name}.yaml"
        given.parent.mkdir(exist_ok=True)
        given.write_text(yaml.safe_dump(ref, sort_keys=False))
    data_path = Path(str(ref.get("real_data_path") or "."))
    if not data_path.is_absolute() or args.relative_paths:
        # an absolute author path is left as it is: the error must name it
        write_reference_root(ref["dataset"].strip(), work / data_path)
    out = work / "out" / f"{name}.yaml"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = ddrank(["import-config", str(given), "--metric", metric_of(ref), "-o", str(out)])
    if rc != 0:
        errors = [line for line in err.getvalue().splitlines() if "error:" in line]
        return False, (errors or err.getvalue().splitlines() or ["no output"])[0]
    if args.dry_run:
        # run where the import ran, as the written config says (its paths are relative)
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow/Snakefile")]
        cmd += ["--directory", str(work), "--configfile", str(out), "--cores", "1", "-n"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            text = (proc.stderr + proc.stdout).splitlines()
            errors = [line for line in text if "rror" in line] or text or [str(proc.returncode)]
            return False, f"snakemake -n: {errors[0]}"
    return True, f"{metric_of(ref)}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="the reference's eval/ folder (YAMLs under it)")
    p.add_argument("--relative-paths", action="store_true", help="absolute paths under tmp")
    p.add_argument("--cached-weights", action="store_true", help="torchvision weights cached")
    p.add_argument("--dry-run", action="store_true", help="also `snakemake -n` each config")
    p.add_argument("--stub-scontrol", action="store_true", help="as bench_planning.py's")
    args = p.parse_args(argv)
    sources = sorted(args.folder.resolve().rglob("*.yaml"))
    planned = 0
    with tempfile.TemporaryDirectory(prefix="ddrank-refcfg-") as tmp:
        work = Path(tmp)
        os.environ["TORCH_HOME"] = str(work / "torch")
        env = dict(os.environ)
        if args.stub_scontrol:
            env["PATH"] = stub_scontrol(work / "bin")
        if args.cached_weights:
            write_cached_weights(work / "torch", TEACHER_ARCHS)
        os.chdir(work)  # the configs' paths are relative to where they are run
        for source in sources:
            rel = source.relative_to(args.folder.resolve())
            name = "_".join(rel.with_suffix("").parts)
            ok, line = check(source, name, work, args, env)
            planned += ok
            print(f"{'planned' if ok else 'error  '}  {rel}: {line}", flush=True)
    print(f"{planned} of {len(sources)} planned")
    return 0 if planned == len(sources) else 1


if __name__ == "__main__":
    sys.exit(main())
