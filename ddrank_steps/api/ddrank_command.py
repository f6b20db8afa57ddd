"""`ddrank`: the command line beside `snakemake`.

    ddrank import-config REF.yaml --metric lrs_hard|lrs_soft|ars|accuracy
                         [--method NAME] [--images PATH] [--labels PATH]
                         [--soft-labels PATH] [--lr LR] -o OUT.yaml

translates a DD-Ranking YAML config (the keys of its evaluator classes) into a ddrank
config for one method that `snakemake --cores N --configfile OUT.yaml` runs. Every key is
mapped or refused by name (`api.translate`); the config is checked against the
workflow's schema and planned before it is written, and what differs from the reference
is printed and written at the top of the file.

    ddrank check CONFIG.yaml

checks a ddrank config as `snakemake --configfile CONFIG.yaml` does before any job (read,
schema, plan), each problem one line naming the file. Snakemake reads a `--configfile`
itself before the workflow's code runs, and a file that is not UTF-8 text (a checkpoint
given by mistake) gets its ~50-line UnicodeDecodeError traceback instead
(snakemake/common/configfile.py catches only YAML errors); this command says it in one.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from ddrank_steps import paths
from ddrank_steps.api.config import Config
from ddrank_steps.api.translate import (
    CLASSES,
    Context,
    Translation,
    settings_with_defaults,
    translate,
)
from ddrank_steps.api.workflow_run import checked_plan
from ddrank_steps.errors import ConfigError, InputError

NAME = re.compile(r"[^A-Za-z0-9_.+-]+")


def import_config(args: argparse.Namespace) -> int:
    ref = Config.from_file(args.reference)
    where = str(args.reference)
    settings, ignored = settings_with_defaults(dict(ref), args.metric, where, from_file=True)
    method = args.method or NAME.sub("_", Path(args.reference).stem).strip("_") or "method"
    context = Context(
        metric=args.metric,
        method=method,
        images=args.images or "reference:random",
        where=where,
        given=set(ref) - {n.split(":")[0] for n in ignored},
        labels=args.labels,
        soft_labels=args.soft_labels,
        lr=args.lr,
        train_unknown_real=True,
        from_config=True,
    )
    translation = translate(settings, context)
    notes = [*ignored, *translation.notes, *_api_only_notes(args, translation)]
    out = Path(args.output)
    try:  # planned before it is written, so the file says where its teachers come from
        _, plan = checked_plan(translation.config, str(out))
        error = None
    except ConfigError as exc:
        plan, error = None, exc
    teachers = list(plan.teacher_notes.values()) if plan else []
    _write(out, args, translation, [*notes, *teachers])
    for line in [*notes, *teachers]:
        print(f"note: {line}", file=sys.stderr)
    print(f"wrote {out}: method {method}, metric {args.metric}", file=sys.stderr)
    if (
        error is not None
    ):  # written anyway: a key to add (a recipe, a known accuracy) is an edit away
        print(
            f"ddrank: error: {error}\nddrank: {out} does not run yet; edit it as above",
            file=sys.stderr,
        )
        return 2
    return 0


def check(args: argparse.Namespace) -> int:
    path = Path(args.config)
    config = Config.from_file(path)  # one line for a file that is missing, binary, not YAML
    _, plan = checked_plan(dict(config), str(path))  # the schema's first line, then the plan
    for note in plan.teacher_notes.values():
        print(f"note: {note}", file=sys.stderr)
    methods = ", ".join(config.get("methods") or {}) or "none"
    print(f"{path}: ok (methods: {methods}); run it: snakemake --cores 2 --configfile {path}")
    return 0


def _write(out: Path, args: argparse.Namespace, translation: Translation, notes: list[str]):
    header = [f"# ddrank config imported from {args.reference} ({CLASSES[args.metric]})."]
    header += [f"# {line}" for line in notes]
    header.append(f"# Run: snakemake --cores 2 --configfile {args.output}")
    text = "\n".join(header) + "\n" + yaml.safe_dump(translation.config, sort_keys=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    tmp.replace(out)


def _api_only_notes(args: argparse.Namespace, translation: Translation) -> list[str]:
    """Notes on what the workflow does instead of the Python API's extras: the set (no
    --images), save_path and random_data_path."""
    notes = []
    if args.images is None:
        notes.append(
            "no --images: the method is a random real subset (images: reference:random), a "
            "baseline to check the setup; give --images for your distilled set"
        )
    if translation.save_path:
        score = paths.SCORE.format(method=translation.method, metric=args.metric)
        notes.append(
            f"save_path {translation.save_path}: the workflow writes {paths.LEADERBOARD} and "
            f"{score} (the Python API writes save_path)"
        )
    if translation.random_data:
        fmt, path = translation.random_data
        notes.append(
            f"random_data_path {path} ({fmt}): the rdm subsets are kept as "
            f"{paths.RDM_SET} and {paths.RDM_PNG}/ (the Python API copies them there)"
        )
    return notes


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ddrank", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser(
        "import-config",
        help="translate a DD-Ranking YAML config into a ddrank config",
        description="Translate a DD-Ranking YAML config into a ddrank config for one method.",
    )
    imp.add_argument("reference", help="the DD-Ranking YAML (or JSON) config")
    imp.add_argument("--metric", required=True, choices=sorted(CLASSES))
    imp.add_argument("--method", help="the method's name (default: the file's name)")
    imp.add_argument("--images", help="the distilled set: a .pt file or a class-folder tree")
    imp.add_argument("--labels", help="a .pt of hard (N,) or soft (N, classes) labels")
    imp.add_argument("--soft-labels", help="a .pt of (N, classes) soft labels (mode S)")
    imp.add_argument("--lr", help="the set's own learning rate: a number or a .pt/.txt file")
    imp.add_argument("-o", "--output", required=True, help="where to write the ddrank config")
    imp.set_defaults(func=import_config)
    chk = sub.add_parser(
        "check",
        help="check a ddrank config as `snakemake --configfile` does, before any job",
        description="Check a ddrank config (read, schema, plan) as `snakemake --configfile` "
        "does before any job; each problem is one line naming the file.",
    )
    chk.add_argument("config", help="the ddrank config (YAML or JSON)")
    chk.set_defaults(func=check)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "lr", None) is not None:
        try:
            args.lr = float(args.lr)
        except ValueError:
            pass  # a file holding it
    try:
        return args.func(args)
    except (ConfigError, InputError) as exc:
        print(f"ddrank: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
