"""What every stage's command line shares: logging to the job's log, and clean errors.

A wrong input ends the job with one line naming the file, the field and the fix
(exit code 2), not a traceback; anything unexpected keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from ddrank_steps.errors import ConfigError, InputError

log = logging.getLogger("ddrank")


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def json_arg(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None


def run(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser, argv=None):
    setup_logging()
    args = parser.parse_args(argv)
    try:
        main(args)
    except (InputError, ConfigError) as exc:
        log.error("%s", exc)
        sys.exit(2)
