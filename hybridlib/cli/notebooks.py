"""``hybridlib run-notebooks``: execute the notebook series with papermill (see :mod:`hybridlib.runner`)."""

from __future__ import annotations

import sys
import time

from hybridlib.runner import NotebookFailed, load_params, run_notebooks


def add_arguments(parser) -> None:
    parser.add_argument("--smoke", action="store_true", help="tiny configuration that finishes in seconds")
    parser.add_argument("--params", help="YAML/JSON file of parameters (global or keyed by notebook)")
    parser.add_argument("--only", help="comma-separated notebook numbers or names, e.g. 03,04")
    parser.add_argument("--out", help="output folder (default runs/<timestamp>)")
    parser.add_argument("--notebooks", help="folder of notebooks (default: the series in notebooks/)")
    parser.add_argument("--keep-going", action="store_true", help="run the remaining notebooks after a failure")
    parser.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's, else python3)")
    parser.add_argument("--no-html", action="store_true",
                        help="skip the offline HTML pages of the executed copies (<out>/html/)")


def run(args) -> int:
    start = time.perf_counter()
    try:
        runs = run_notebooks(
            smoke=args.smoke,
            params=load_params(args.params),
            only=args.only.split(",") if args.only else None,
            out=args.out,
            folder=args.notebooks,
            keep_going=args.keep_going,
            kernel_name=args.kernel,
            html=not args.no_html,
        )
    except NotebookFailed as exc:
        print(f"[run-notebooks] {exc}", file=sys.stderr)
        return 1
    out = runs[0].output.parent if runs else None
    print(f"[run-notebooks] {len(runs)} notebook(s) ok in {time.perf_counter() - start:.1f} s")
    print(f"[run-notebooks] executed notebooks, figures and results.json are in: {out}")
    if runs and runs[0].html:
        print(f"[run-notebooks] offline HTML pages (open in any browser, no internet needed): {runs[0].html.parent}")
    return 0
