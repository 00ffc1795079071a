"""Command-line entry point: ``python -m hybridlib <command> ...`` (also installed as ``hybridlib``).

Each command is a module of this package exposing ``add_arguments(parser)`` and ``run(args) -> int``; it
parses, calls the package and prints, nothing more. Modules are imported only for the command that runs,
so ``hybridlib info`` does not pay for importing what ``hybridlib train`` needs.

One error policy for every command: a :class:`~hybridlib.util.errors.UserError` (bad config, path,
dataset, file) prints ``error: <message>`` on stderr and exits with 2; another
:class:`~hybridlib.util.errors.HybridlibError` (a download or training that failed) prints the same one
line and exits with 1; Ctrl-C exits with 130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("hybridlib.cli.info", "versions, device, and which bundled models and datasets are found"),
    "run-notebooks": ("hybridlib.cli.notebooks", "execute the notebook series with papermill"),
    "format-notebooks": ("hybridlib.cli.notebook_format", "put notebooks in the form JupyterLab saves"),
    "download": ("hybridlib.cli.download", "download datasets (clotho) or official model weights"),
    "make-teaching-set": ("hybridlib.cli.teaching", "generate the embedded teaching dataset"),
    "make-rehearsal": ("hybridlib.cli.rehearsal", "miniature real-audio datasets + random-weight stand-ins"),
    "extract": ("hybridlib.cli.extract", "fill the feature cache for a dataset and a frozen backbone"),
    "train": ("hybridlib.cli.train", "train (and evaluate) a retrieval model from a config file"),
    "evaluate": ("hybridlib.cli.evaluate", "evaluate a trained run on a split (metrics-<split>.json)"),
    "reproduce": ("hybridlib.cli.reproduce", "train every row and seed of a paper table, compare with the paper"),
    "results-table": ("hybridlib.cli.results_table", "the README's results block from a `make demo` run"),
    "assignments": ("hybridlib.cli.assignments", "build, check and grade the nbgrader exercise course"),
    "search": ("hybridlib.cli.search", "the top-k clips of a trained run for a typed query, as a table"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hybridlib",
        description="hybrid-retrieval: language-based audio retrieval with audio metadata",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    problem = _argument_problem(argv)
    if problem:  # refused before anything uses the argument or builds a path from it
        print(f"error: {problem}", file=sys.stderr)
        return 2
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and command not in COMMANDS:
        build_parser().parse_args(argv)  # prints argparse's "invalid choice" error and exits 2
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    from hybridlib.util.errors import HybridlibError, ReportedElsewhere

    try:
        return int(module.run(args) or 0)
    except ReportedElsewhere as exc:  # e.g. rank 0 of a torchrun run failed and printed the error
        return exc.exit_code
    except HybridlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _argument_problem(argv: list[str]) -> str | None:
    """The first argument that cannot be used, in one sentence, or None: bytes that are not UTF-8 (they arrive
    as lone surrogates) or a NUL byte (only a caller of :func:`main` can pass one; a shell cannot)."""
    from hybridlib.util.filenames import nul_problem
    from hybridlib.util.values import describe_value, not_utf8

    for i, arg in enumerate(argv):
        bad = not_utf8(arg)
        if bad:
            shown = describe_value(arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
            return (f"the argument {shown} is not UTF-8 text ({bad}): type it in UTF-8 (a file or folder name "
                    "too: rename it)")
        if "\x00" in arg:
            option = arg.split("=", 1)[0] if arg.startswith("-") else argv[i - 1] if i and argv[i - 1][:1] == "-" \
                else f"argument {i + 1}"
            return nul_problem(arg, option)
    return None


if __name__ == "__main__":
    sys.exit(main())
