"""Reading the datasets' CSV files with clear errors (file and column named) and encoding fallback."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hybridlib.data.items import DatasetError


def read_text(path: Path, encodings: tuple[str, ...] = ("utf-8-sig", "iso-8859-1")) -> str:
    """Decode a text file, trying each encoding in turn.

    Clotho's metadata CSVs are ISO-8859-1 while its caption CSVs and our generated files are UTF-8;
    strict UTF-8 decoding fails on Latin-1 bytes outside ASCII, so trying UTF-8 first is safe.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    raw = path.read_bytes()
    for enc in encodings:
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise DatasetError(f"{path}: cannot decode with any of {encodings}")


def read_csv_rows(path: Path, required: list[str], comment: str | None = None,
                  encodings: tuple[str, ...] = ("utf-8-sig", "iso-8859-1")) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts; raises :class:`DatasetError` naming the file if a column is missing.

    ``comment``: lines starting with it are skipped (AudioSet segment files start with ``#`` lines).
    Header names are stripped of surrounding spaces.
    """
    text = read_text(path, encodings)
    lines = text.splitlines(keepends=True)
    if comment is not None:
        lines = [ln for ln in lines if not ln.lstrip().startswith(comment)]
    reader = csv.reader(io.StringIO("".join(lines)), skipinitialspace=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DatasetError(f"{path}: empty CSV file (no header)") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; found {header}")
    rows = []
    for lineno, values in enumerate(reader, start=2):
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) < len(header):
            values = values + [""] * (len(header) - len(values))
        elif len(values) > len(header):
            raise DatasetError(f"{path}: line {lineno} has {len(values)} fields, header has {len(header)}")
        rows.append(dict(zip(header, values)))
    return rows


def write_csv_rows(path: Path, header: list[str], rows: list[dict]) -> None:
    """Write UTF-8 CSV rows (quoting as needed), creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in header})
