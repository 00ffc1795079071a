"""``hybridlib format-notebooks``: put notebooks in the form JupyterLab saves (see :mod:`hybridlib.notebook_format`)."""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("paths", nargs="*", help="notebooks or folders (default: notebooks/)")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if a notebook differs")


def run(args) -> int:
    from hybridlib.notebook_format import check, list_notebooks, normalize
    from hybridlib.paths import notebooks_dir
    from hybridlib.util.errors import UserError

    books: list[Path] = []
    for given in args.paths or [str(notebooks_dir())]:
        path = Path(given)
        if not path.exists() or (path.is_file() and path.suffix != ".ipynb"):
            raise UserError(f"{given}: no such notebook or folder")
        books += list_notebooks(path) if path.is_dir() else [path]
    if args.check:
        problems = [p for book in books for p in check(book)]
        print("\n".join(problems) or f"{len(books)} notebooks in the committed form")
        return 1 if problems else 0
    changed = [book for book in books if normalize(book)]
    print(f"normalized {len(changed)} of {len(books)} notebooks" + "".join(f"\n  {b}" for b in changed))
    return 0
