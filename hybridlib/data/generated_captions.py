"""Captions generated from a clip's own keywords: the teaching set's stand-in for WavCaps (hybrid paper, Table II).

WavCaps (Mei et al., 2023) made captions for FreeSound clips by prompting ChatGPT with their metadata. The hybrid
paper trained on its FreeSound subset, with the same keywords as the hybrid model's metadata, and evaluated on
ClothoV2's human captions: the hybrid model fell behind the content-only one (27.67 vs 30.35 mAP@10), "likely ...
because the hybrid retrieval model focuses mostly on the high similarity between metadata and the keywords and
neglects the audio signal during training", a similarity absent at test time.

:func:`captions_from_keywords` plays the language model with seeded templates, so the mechanism can be studied on
the teaching set (``TrainConfig.train_captions = "from-keywords"``: the training split's captions are replaced,
validation and evaluation keep the dataset's own). Choices, each a parameter:

* Every usable keyword of the clip appears in every caption, in a random order, inside one of
  :data:`TEMPLATES` ("The sound of frying, pan and kitchen."): what a language model does with a tag list, and the
  property that matters (captions and metadata share their words). Keywords about the recording rather than the
  sound (:data:`GEAR_WORDS`: devices, formats, "sfx", ...) are left out, as a model asked to describe the sound
  would; a clip whose keywords are all such words uses them anyway (there is nothing else to say).
* As many captions per clip as it had (``n_captions=None``; WavCaps has one), so an epoch sees as many
  caption variants as with the dataset's captions; each is drawn with a generator seeded by
  ``(seed, clip_id, caption index)``, independent of item order.
* A clip without keywords keeps its own captions and is counted in the report's notes (nothing is dropped
  silently).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from hybridlib.data.items import ClipSet, Item, LoadReport
from hybridlib.data.metadata import keyed_random
from hybridlib.util.text import normalize_text

TEMPLATES: tuple[str, ...] = (
    "The sound of {words}.",
    "{Words} can be heard.",
    "A recording of {words}.",
    "Sounds of {words} are heard.",
    "An audio clip with {words}.",
    "Someone recorded {words}.",
    "{Words} in this recording.",
    "There is {words}.",
)
#: keywords about the recording, not the sound (left out of generated captions)
GEAR_WORDS = frozenset({
    "field recording", "fieldrecording", "zoom h4n", "zoom", "h4n", "tascam", "stereo", "mono", "binaural", "mic",
    "microphone", "48khz", "44khz", "44100", "wav", "mp3", "sfx", "sound effect", "sound effects", "foley", "loop",
    "recording", "recorded", "audio", "sample",
})


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def caption_from_keywords(keywords: Sequence[str], rng: random.Random, gear_words=GEAR_WORDS) -> str:
    """One sentence naming every usable keyword (see the module docstring)."""
    words = [k.strip() for k in keywords if k and k.strip()]
    usable = [w for w in words if normalize_text(w) not in gear_words] or words
    usable = list(dict.fromkeys(usable))
    if not usable:
        raise ValueError("no keywords to build a caption from")
    rng.shuffle(usable)
    template = rng.choice(TEMPLATES)
    text = template.format(words=_join(usable), Words=_join(usable))
    return text[0].upper() + text[1:]


def captions_from_keywords(items: Sequence[Item], seed: int = 0, n_captions: int | None = None,
                           gear_words=GEAR_WORDS) -> ClipSet:
    """Copies of ``items`` whose captions are generated from their own keywords (module docstring).

    The originals are kept in ``extra["dataset_captions"]``; the report's notes say how many clips kept their
    captions for lack of keywords.
    """
    out, kept = [], 0
    for item in items:
        new = item.copy()
        keywords = [k for k in (item.keywords or []) if k and k.strip()]
        if not keywords:
            kept += 1
            out.append(new)
            continue
        n = n_captions or max(1, len(item.captions))
        captions = []
        for k in range(n):
            rng = keyed_random("generated-caption", seed, item.clip_id, k)
            captions.append(caption_from_keywords(keywords, rng, gear_words))
        new.extra["dataset_captions"] = list(item.captions)
        new.captions = captions
        out.append(new)
    report = getattr(items, "report", None) or LoadReport(clips=len(out))
    note = f"captions generated from keywords (seed {seed})"
    if kept:
        note += f"; {kept} clips without keywords kept their own captions"
    rep = LoadReport(**{**report.as_dict(), "notes": [*report.notes, note]})
    rep.clips, rep.captions = len(out), sum(len(it.captions) for it in out)
    return ClipSet(out, rep)

