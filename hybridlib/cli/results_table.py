"""``hybridlib results-table RUN [--update README.md]``: the README's results block from a ``make demo`` run
(see :mod:`hybridlib.results_table`)."""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("run", help="folder of a `make demo` run (runs/<timestamp>) with notebooks 00 and 07 done")
    parser.add_argument("--update", metavar="README", default=None,
                        help="replace the block between the results-table markers in this file")


def run(args) -> int:
    from hybridlib.results_table import results_block, update_readme
    from hybridlib.util.errors import UserError

    if not Path(args.run).is_dir():
        raise UserError(f"{args.run}: no such folder (give a `make demo` run folder, e.g. runs/20261201-120000)")
    block = results_block(args.run)
    if args.update:
        changed = update_readme(args.update, block)
        print(f"{args.update}: results block {'updated' if changed else 'already up to date'}")
    else:
        print(block)
    return 0
