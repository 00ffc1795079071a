"""Reading the datasets' CSV files: strict decoding per file, any line ending, errors naming file and line.

Decoding policy (one decision per file, never per character, so nothing is garbled silently):

* a file that is valid UTF-8 (with or without a byte-order mark) is read as UTF-8 - Clotho's caption CSVs,
  AudioCaps, AudioSet and every file hybridlib writes;
* a file with no valid UTF-8 multi-byte sequence at all is a legacy single-byte file (Clotho's metadata is
  documented as ISO-8859-1) and is read as Windows-1252, which agrees with ISO-8859-1 on every printable
  character and also gives Windows' curly quotes and dashes (bytes 0x80-0x9F, control characters in
  ISO-8859-1) their meaning; the load report's notes say so;
* a file mixing both - UTF-8 text with a stray byte of another encoding - is refused with a
  :class:`~hybridlib.data.items.DatasetError` naming the file, the line, the column and the byte, since
  reading it either way would garble part of it. (So would a single-byte file using a byte Windows-1252
  leaves undefined.) Fix the byte or re-save the file as UTF-8.

Line endings: ``\\n``, ``\\r\\n`` and old-Mac ``\\r`` alone are all accepted (also mixed); a malformed CSV
row raises :class:`~hybridlib.data.items.DatasetError` naming the file and the line.
"""

from __future__ import annotations

import csv
from pathlib import Path

from hybridlib.data.items import DatasetError

LEGACY_ENCODING = "windows-1252"
_BOM = b"\xef\xbb\xbf"


def _position(raw: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column) of byte ``offset``, counting ``\\r\\n``, ``\\r`` and ``\\n`` as one break each."""
    head = raw[:offset].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    line = head.count(b"\n") + 1
    return line, len(head) - (head.rfind(b"\n") + 1) + 1


def decode_bytes(raw: bytes, path: str | Path = "<bytes>") -> tuple[str, str]:
    """``(text, encoding)`` of a file's bytes under the module's decoding policy."""
    body = raw[len(_BOM):] if raw.startswith(_BOM) else raw
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        first_bad = exc.start + (len(raw) - len(body))
    mixed = raw.startswith(_BOM) or any(
        ord(c) > 127 and not 0xDC80 <= ord(c) <= 0xDCFF for c in body.decode("utf-8", "surrogateescape"))
    byte = raw[first_bad]
    line, column = _position(raw, first_bad)
    where = f"{path}: line {line}, column {column} (byte offset {first_bad})"
    if mixed:
        legacy = bytes([byte]).decode(LEGACY_ENCODING, errors="replace")
        raise DatasetError(f"{where}: byte 0x{byte:02X} is not valid UTF-8, but the rest of the file is UTF-8 "
                           f"(a stray {LEGACY_ENCODING}/ISO-8859-1 byte, {legacy!r} there?); the file was not read "
                           "to avoid garbling it: fix that byte or re-save the file as UTF-8")
    try:
        return raw.decode(LEGACY_ENCODING), LEGACY_ENCODING
    except UnicodeDecodeError as exc:
        bad = exc.start
        line, column = _position(raw, bad)
        raise DatasetError(f"{path}: line {line}, column {column} (byte offset {bad}): byte 0x{raw[bad]:02X} is "
                           f"neither UTF-8 nor {LEGACY_ENCODING} text; re-save the file as UTF-8") from None


def read_text(path: str | Path, notes: list[str] | None = None) -> str:
    """Decode a text file under the module's policy; a non-UTF-8 file adds a line to ``notes`` (if given)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    text, encoding = decode_bytes(path.read_bytes(), path)
    if encoding != "utf-8" and notes is not None:
        notes.append(f"{path.name}: not UTF-8, read as {encoding} (ISO-8859-1 compatible)")
    return text


def text_lines(text: str) -> list[str]:
    """Lines of ``text`` split at ``\\r\\n``, ``\\r`` or ``\\n`` only (not at the other characters
    :meth:`str.splitlines` breaks on, such as U+2028 or U+0085, which may sit inside a caption)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def csv_records(path: Path, text: str, comment: str | None = None):
    """``(line number, fields)`` of each CSV record of ``text`` (``csv.Error`` re-raised naming file and line)."""
    numbered = [(n, ln) for n, ln in enumerate(text_lines(text), start=1)
                if comment is None or not ln.lstrip().startswith(comment)]
    line_of = [n for n, _ in numbered]
    reader = csv.reader((ln + "\n" for _, ln in numbered), skipinitialspace=True, strict=True)
    try:
        for values in reader:
            yield line_of[min(reader.line_num, len(line_of)) - 1], values
    except csv.Error as exc:
        line = line_of[min(reader.line_num, len(line_of)) - 1] if line_of else 1
        raise DatasetError(f"{path}: line {line}: malformed CSV ({exc})") from None


def read_csv_rows(path: Path, required: list[str], comment: str | None = None,
                  notes: list[str] | None = None) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts; raises :class:`DatasetError` naming the file if a column is missing.

    ``comment``: lines starting with it are skipped (AudioSet segment files start with ``#`` lines).
    Header names are stripped of surrounding spaces. ``notes`` receives a line when the file is not UTF-8.
    """
    text = read_text(path, notes)
    records = csv_records(Path(path), text, comment)
    try:
        _, header = next(records)
    except StopIteration:
        raise DatasetError(f"{path}: empty CSV file (no header)") from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; found {header}")
    rows = []
    for lineno, values in records:
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
