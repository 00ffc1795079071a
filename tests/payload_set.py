"""A teaching set whose texts carry script, Markdown, table and mathtext payloads (issue 20), and the checks of
a page made from it.

:func:`make_payload_set` copies a teaching set (any size; the tests use the smoke set) and rewrites it so that
every kind of dataset text a notebook shows holds a payload: audio files renamed to names such as
``<img src=x onerror=alert(1)>.wav`` (the caption, metadata, events and scenes tables follow the new names, so
the set stays valid), the first caption of every clip, keywords, tags, the ground-truth event labels, and the
set's own folder name. :func:`page_problems` lists what would run in a browser: an ``on*`` attribute, a
``<script>`` the exporter did not write, a ``javascript:`` link or source.
"""

from __future__ import annotations

import csv
import shutil
from html.parser import HTMLParser
from pathlib import Path

IMG = "<img src=x onerror=alert(1)>"
SVG = "<svg onload=alert(2)>"
LINK = "[click](javascript:alert(3))"
MARKDOWN = "**bold**_x_"
TABLE = "pipe | `tick`"
MATH = r"$\nosuchmacro$"  # matplotlib's mathtext cannot draw it: drawn as math, a figure fails
SCRIPT = "<script>alert(4)</script>"
# the texts that must reach the pages as text (what a reader of the page sees)
PAYLOADS = (IMG, SVG, LINK, MARKDOWN, TABLE, MATH, SCRIPT)

# file names (no "/": a file name cannot hold one) per split: the first clips of each split are renamed
FILE_NAMES = {
    "development": [f"{MATH} {IMG}.wav", f"{MARKDOWN} {LINK}.wav", f"{TABLE} {SVG}.wav"],
    "validation": [f"{IMG} val.wav"],
    "evaluation": [f"{IMG} eva.wav", f"{TABLE} {MATH} eva.wav", f"{MARKDOWN} {LINK} eva.wav"],
}
# every first caption holds a live handler and mathtext, whichever caption a notebook picks to show
CAPTION_PAYLOADS = [f"{MATH} {IMG} {other}" for other in (LINK, MARKDOWN, TABLE, SVG, SCRIPT)]
KEYWORDS = [IMG, SCRIPT, MATH, MARKDOWN, TABLE]
TAG = f"{IMG} tag"
FOLDER = "payload <b onmouseover=alert(5)>set"


def _rewrite(path: Path, fix) -> None:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
        fields = list(rows[0]) if rows else []
    rows = [fix(dict(row)) for row in rows]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def make_payload_set(source: Path, parent: Path) -> Path:
    """A copy of the teaching set ``source`` below ``parent`` (folder :data:`FOLDER`) with payloads in its texts
    and file names (see the module docstring); returns its root."""
    root = Path(parent) / FOLDER
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(source, root)
    tables = root / "CLOTHO_v2.1" / "clotho_csv_files"
    audio = root / "CLOTHO_v2.1" / "clotho_audio_files"
    renamed: dict[tuple[str, str], str] = {}
    for split, names in FILE_NAMES.items():
        files = sorted(p.name for p in (audio / split).glob("*.wav"))
        for old, new in zip(files, names):
            (audio / split / old).rename(audio / split / new)
            renamed[split, old] = new

    for split in FILE_NAMES:
        counter = iter(range(10**6))

        def captions(row, split=split, counter=counter):
            row["file_name"] = renamed.get((split, row["file_name"]), row["file_name"])
            payload = CAPTION_PAYLOADS[next(counter) % len(CAPTION_PAYLOADS)]
            row["caption_1"] = f"{payload} {row['caption_1']}"
            return row

        def metadata(row, split=split):
            row["file_name"] = renamed.get((split, row["file_name"]), row["file_name"])
            row["keywords"] = ";".join([*KEYWORDS, *filter(None, row["keywords"].split(";"))])
            row["tags"] = ";".join([TAG, *filter(None, row["tags"].split(";"))])
            return row

        _rewrite(tables / f"clotho_captions_{split}.csv", captions)
        _rewrite(tables / f"clotho_metadata_{split}.csv", metadata)

    def ground_truth(row):
        row["file_name"] = renamed.get((row["split"], row["file_name"]), row["file_name"])
        if "label" in row:
            row["label"] = f"{row['label']} {MATH} {IMG}"
        return row

    _rewrite(root / "events.csv", ground_truth)
    _rewrite(root / "scenes.csv", ground_truth)
    return root


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.problems.append(f"<{tag} {name}={value!r}>")
            if name.lower() in {"href", "src", "action", "formaction", "xlink:href", "data"} and value \
                    and "".join(value.split()).lower().startswith(("javascript:", "vbscript:")):
                self.problems.append(f"<{tag} {name}={value!r}>")
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def parse_page(html: str) -> _Page:
    """The page's problems (see :func:`page_problems`), its scripts and its text."""
    page = _Page()
    page.feed(html)
    page.close()
    return page


def page_problems(html: str, own_scripts: set[str] = frozenset()) -> list[str]:
    """What would run in a browser: elements with an ``on*`` attribute, ``javascript:`` links or sources, and
    ``<script>`` elements other than ``own_scripts`` (the exporter's own, by content)."""
    page = parse_page(html)
    return page.problems + [f"<script>{s.strip()[:80]}</script>" for s in page.scripts
                            if s.strip() not in own_scripts]


def page_text(html: str) -> str:
    """The text a reader sees (entities decoded, scripts left out)."""
    return "".join(parse_page(html).text)
