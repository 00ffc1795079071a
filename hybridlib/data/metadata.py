"""Metadata as the hybrid paper uses it: rendering to text, the FS protocol, statistics and degradation.

* **Rendering** (:func:`metadata_text`): the paper converts CS and OS tags "to whitespace-separated lists of
  keywords"; each tag goes through the one text normaliser the queries use too
  (:func:`hybridlib.util.text.normalize_text`: lowercase, apostrophes deleted, other punctuation becomes a
  space), then the tags are joined by spaces. Empty results count as missing metadata (``None``).
* **FS protocol** (:func:`with_fs_descriptions`): Clotho has no full-sentence metadata, so the paper
  simulates it: "we use one of the captions as a query and another one as metadata". Exactly: for each
  clip with at least two captions, one caption is drawn with a generator seeded by ``(seed, clip_id)``
  (independent of item order), moved to ``Item.description`` and removed from ``Item.captions``, so it is
  never a query for its own clip. Its index is kept in ``extra["fs_caption_index"]``. Clips with a single
  caption (AudioCaps train) keep their caption as query and get no description (counted in the report).
  The choice is fixed for the whole run (train, validation and evaluation alike).
* **Degradation** (:func:`degrade_metadata`): the paper's stated future work ("noisier keywords ... and
  missing metadata"). Four seeded knobs: drop a fraction of tags, add distractor tags, swap tags for
  synonyms, remove metadata from a fraction of clips. Every random decision uses a uniform number fixed by
  ``(seed, clip_id, tag position, knob)``, so raising a knob only adds corruptions (a sweep is nested:
  the clips stripped at 20 % are among those stripped at 40 %).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from hybridlib.data.items import ClipSet, Item, LoadReport
from hybridlib.util.text import normalize_text

KINDS = ("os", "cs", "fs")
_WORDS = re.compile(r"[a-z0-9]+")


def _check_kind(kind: str) -> str:
    kind = kind.lower()
    if kind not in KINDS:
        raise ValueError(f"Unknown metadata kind {kind!r}; expected one of {KINDS}")
    return kind


def metadata_raw(item: Item, kind: str):
    """The item's metadata of ``kind`` as stored (list of tags, description string, or None)."""
    kind = _check_kind(kind)
    return {"os": item.keywords, "cs": item.tags, "fs": item.description}[kind]


def metadata_text(item: Item, kind: str) -> str | None:
    """The metadata of ``kind`` rendered as text for the text encoder, or None when the clip has none.

    OS/CS: the tags normalized and whitespace-joined, in stored order; FS: the normalized description.
    """
    raw = metadata_raw(item, kind)
    if raw is None:
        return None
    text = normalize_text(raw if isinstance(raw, str) else " ".join(raw))
    return text or None


def has_metadata(item: Item, kind: str) -> bool:
    return metadata_text(item, kind) is not None


def _uniform(*key) -> float:
    """A reproducible uniform number in [0, 1) from a key (independent of Python's hash seed)."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def keyed_random(*key) -> random.Random:
    """A ``random.Random`` seeded by a key (e.g. ``("fs", seed, clip_id)``): the same draws for the same key,
    whatever the item order or Python's hash seed."""
    return random.Random(int(_uniform(*key) * 2**53))


def _with_report(items: list[Item], report: LoadReport, note: str) -> ClipSet:
    rep = LoadReport(**{**report.as_dict(), "notes": [*report.notes, note]})
    rep.clips = len(items)
    rep.captions = sum(len(it.captions) for it in items)
    return ClipSet(items, rep)


def with_fs_descriptions(items: Sequence[Item], seed: int = 0) -> ClipSet:
    """Apply the FS protocol (module docstring) to copies of ``items``; the input is not modified."""
    out, single = [], 0
    for item in items:
        new = item.copy()
        if len(new.captions) >= 2:
            k = keyed_random("fs", seed, new.clip_id).randrange(len(new.captions))
            new.description = new.captions.pop(k)
            new.extra["fs_caption_index"] = k
        else:
            new.description = None
            single += 1
        out.append(new)
    report = getattr(items, "report", None) or LoadReport(clips=len(out))
    note = f"FS protocol (seed {seed}): one caption per clip moved to description"
    if single:
        note += f"; {single} single-caption clips kept without description"
    result = _with_report(out, report, note)
    result.report.missing_metadata = sum(it.description is None for it in out)
    described = len(out) - single
    result.report.sources = {**report.sources, "fs_protocol": {
        "seed": seed, "descriptions": described, "queries_removed": described, "single_caption_clips": single}}
    return result


# A small general synonym table for common sound words (extended by the teaching-set vocabulary).
GENERAL_SYNONYMS: dict[str, list[str]] = {
    "dog": ["canine", "hound"], "bird": ["songbird", "birdsong"], "birds": ["birdsong", "avian"],
    "car": ["automobile", "vehicle"], "rain": ["rainfall", "raindrops"], "water": ["liquid", "aqua"],
    "wind": ["breeze", "gust"], "door": ["gate", "entrance"], "footsteps": ["steps", "walking"],
    "people": ["crowd", "persons"], "voice": ["speech", "talking"], "noise": ["sound", "static"],
    "ambience": ["ambient", "atmosphere"], "street": ["road", "traffic"], "city": ["urban", "town"],
    "nature": ["outdoors", "wilderness"], "bell": ["chime", "ding"], "engine": ["motor", "machine"],
    "music": ["melody", "tune"], "metal": ["metallic", "steel"], "wood": ["wooden", "timber"],
    "kitchen": ["cooking", "cookery"], "train": ["railway", "locomotive"], "thunder": ["storm", "thunderstorm"],
    "walking": ["footsteps", "steps"], "field recording": ["fieldrecording", "location recording"],
}


def default_synonyms() -> dict[str, list[str]]:
    """:data:`GENERAL_SYNONYMS` merged with the teaching set's keyword synonym groups."""
    from hybridlib.data.sound_synthesis import keyword_synonym_groups

    table = {k: list(v) for k, v in GENERAL_SYNONYMS.items()}
    for group in keyword_synonym_groups():
        for word in group:
            table.setdefault(word, [])
            table[word] += [w for w in group if w != word and w not in table[word]]
    return table


def tag_vocabulary(items: Iterable[Item], kind: str = "os") -> Counter:
    """How many clips carry each (normalized) tag; for ``fs``, how many descriptions contain each word."""
    counts: Counter = Counter()
    for item in items:
        raw = metadata_raw(item, kind)
        if raw is None:
            continue
        tags = _WORDS.findall(normalize_text(raw)) if isinstance(raw, str) else [normalize_text(t) for t in raw]
        counts.update({t for t in tags if t})
    return counts


def degrade_metadata(items: Sequence[Item], kind: str = "os", *, drop_tags: float = 0.0,
                     add_distractors: float = 0.0, swap_synonyms: float = 0.0, remove_metadata: float = 0.0,
                     seed: int = 0, distractors: Sequence[str] | None = None,
                     synonyms: dict[str, list[str]] | None = None) -> ClipSet:
    """Copies of ``items`` with noisier or missing metadata of ``kind`` (see the module docstring).

    * ``drop_tags``: each tag is removed with this probability (an FS description loses words instead).
    * ``add_distractors``: for each tag, with this probability one wrong tag is appended, drawn from
      ``distractors`` (default: the tag vocabulary of ``items`` itself), never one the clip already has.
    * ``swap_synonyms``: each tag that has an entry in ``synonyms`` (default :func:`default_synonyms`) is
      replaced by one of its synonyms with this probability.
    * ``remove_metadata``: exactly ``round(fraction * len(items))`` clips lose this kind of metadata (None).

    The returned report's notes record the knobs and how many tags/clips each one changed.
    """
    kind = _check_kind(kind)
    for name, value in [("drop_tags", drop_tags), ("add_distractors", add_distractors),
                        ("swap_synonyms", swap_synonyms), ("remove_metadata", remove_metadata)]:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    syn = default_synonyms() if synonyms is None and swap_synonyms > 0 else (synonyms or {})
    pool = sorted(distractors) if distractors is not None else sorted(tag_vocabulary(items, kind))
    n_remove = round(remove_metadata * len(items))
    order = sorted(range(len(items)), key=lambda i: _uniform("remove", seed, items[i].clip_id, i))
    removed = set(order[:n_remove])
    stats = Counter()
    out = []
    for idx, item in enumerate(items):
        new = item.copy()
        raw = metadata_raw(new, kind)
        if idx in removed:
            raw = None
            stats["clips_removed"] += int(metadata_raw(item, kind) is not None)
        elif raw is not None:
            is_text = isinstance(raw, str)
            tags = normalize_text(raw).split() if is_text else list(raw)
            kept = []
            for pos, tag in enumerate(tags):
                if _uniform("drop", seed, new.clip_id, pos) < drop_tags:
                    stats["tags_dropped"] += 1
                    continue
                options = syn.get(normalize_text(tag), [])
                if options and _uniform("syn", seed, new.clip_id, pos) < swap_synonyms:
                    tag = keyed_random("syn-pick", seed, new.clip_id, pos).choice(options)
                    stats["tags_swapped"] += 1
                kept.append(tag)
            own = {normalize_text(t) for t in tags}
            candidates = [t for t in pool if t not in own]
            for pos in range(len(tags)):
                if candidates and _uniform("distract", seed, new.clip_id, pos) < add_distractors:
                    kept.append(keyed_random("distract-pick", seed, new.clip_id, pos).choice(candidates))
                    stats["distractors_added"] += 1
            raw = " ".join(kept) if is_text else kept
        if kind == "os":
            new.keywords = raw
        elif kind == "cs":
            new.tags = raw
        else:
            new.description = raw
        out.append(new)
    report = getattr(items, "report", None) or LoadReport(clips=len(out))
    note = (f"degraded {kind} (seed {seed}): drop_tags={drop_tags}, add_distractors={add_distractors}, "
            f"swap_synonyms={swap_synonyms}, remove_metadata={remove_metadata}; changes {dict(stats)}")
    result = _with_report(out, report, note)
    result.report.missing_metadata = sum(metadata_raw(it, kind) is None for it in out)
    result.report.sources = {**report.sources, "degradation": dict(stats)}
    return result


def keyword_caption_frequencies(items: Iterable[Item], top: int = 15, kind: str = "os"):
    """Data of the hybrid paper's Fig. 4 as a pandas DataFrame (one row per keyword, most common first).

    ``keyword_freq``: fraction of clips with metadata that carry the keyword; ``caption_freq``: fraction of
    all captions whose normalized words contain it (multi-word keywords must appear as a phrase).
    The paper does not define its normalization; these two fractions are the choice made here.
    """
    import pandas as pd

    items = list(items)
    tagged = [it for it in items if metadata_raw(it, kind) is not None]
    counts = tag_vocabulary(tagged, kind)
    captions = [" " + normalize_text(c) + " " for it in items for c in it.captions]
    rows = []
    for word, n in counts.most_common(top):
        hits = sum(f" {word} " in c for c in captions)
        rows.append({"keyword": word, "clips": n, "keyword_freq": n / max(len(tagged), 1),
                     "caption_freq": hits / max(len(captions), 1)})
    return pd.DataFrame(rows, columns=["keyword", "clips", "keyword_freq", "caption_freq"])


# Function words left out of caption word counts (plots of the most frequent content words).
STOPWORDS = frozenset(
    "a an the and or but of in on at to from by with as is are was were be been being it its this that these "
    "those there their they them he she his her someone something while then into onto over under up down "
    "out off for can heard sound sounds some very while after before again has have had which who".split())


def word_counts(texts: Iterable[str], drop_stopwords: bool = True) -> Counter:
    """Counts of normalized words over ``texts`` (without :data:`STOPWORDS` unless ``drop_stopwords=False``)."""
    counts: Counter = Counter()
    for text in texts:
        words = normalize_text(text).split()
        counts.update(w for w in words if not (drop_stopwords and w in STOPWORDS))
    return counts
