"""The embedded teaching set: a small Clotho-layout dataset generated offline, where metadata matters.

``python -m hybridlib make-teaching-set --out data/teaching --seed 0 [--clips 600 150 150] [--bank procedural|PATH]``

Design: why a hybrid model can beat both audio-only and metadata-only here
--------------------------------------------------------------------------
The hybrid paper's claim is that metadata carries information the audio lacks (and vice versa). The
generator builds that into every scene, and each mechanism is checkable in the ground truth files:

* **Metadata knows what audio cannot**
  - *Acoustic twins*: four pairs of classes share one synthesis recipe (rain / frying food, car engine /
    boat motor, knocking / hammering, stream / running faucet; see :mod:`hybridlib.data.sound_synthesis`).
    Captions name the specific one ("bacon fries"), so a query about frying cannot be separated from a
    query about rain by audio; the clip's keywords ("frying", "pan") can.
  - *Places*: each scene has a place (kitchen, street, forest, ...). Captions mention it in about a
    third of the cases ("... in a kitchen"), uploaders tag it in most cases, and the background noise is
    drawn independently of the place, so the audio reveals the place only through place-typical events.
* **Audio knows what metadata misses**
  - Keywords are uploader-like: the main event is tagged with probability 0.85, every other event with
    probability 0.35, and gear/mood distractors ("zoom h4n", "relaxing") are added. Captions describe
    most events of the clip, so queries about untagged events need the audio.
  - Loudness ("loudly", "in the distance"), counts ("twice") and temporal order ("then", "while",
    "followed by") are in the captions and the audio, never in the keywords.
* CS tags (closed vocabulary, one label per class, like AudioSet labels) list each present event with
  probability 0.9: complete-ish, no places, no distractors. FS descriptions come from the FS protocol of
  :func:`hybridlib.data.metadata.with_fs_descriptions` (one caption moved to metadata), as in the paper.

Check that the design works (one seed, 6 epochs, frozen sfx-cnn and MiniLM, the teaching configs in
``experiments/teaching``; evaluation split, 150 clips; single runs on a shared CPU, so treat the
differences as indicative): text-to-audio mAP@10 audio-only 45.9, metadata-only (OS) 35.6, hybrid late
fusion with OS 50.5, with CS 56.0, with FS 56.6. The hybrid model beats both single-modality systems, and
the ordering FS > OS > audio-only follows the hybrid paper's Table I.

Scenes: 5-10 s, 1-4 events (place-typical classes four times as likely), random onsets so events
overlap or follow each other, levels -34..-16 dB (RMS over the event's active part), optional low
background (70 %). Captions never name an absent event: each of the five captions names a subset of the
present events (the most prominent one with probability 0.9), in onset order.

Files (Clotho layout, so :func:`hybridlib.data.load_clotho` reads it; 16-bit PCM wav, 44.1 kHz mono,
the sfx-cnn rate)::

    {out}/CLOTHO_v2.1/clotho_csv_files/clotho_{captions,metadata}_{development,validation,evaluation}.csv
    {out}/CLOTHO_v2.1/clotho_audio_files/{split}/*.wav
    {out}/events.csv      ground truth: file_name, split, class, label, onset, offset, level_db, count,
                          in_keywords, in_tags, mentioned (how many captions name it)
    {out}/scenes.csv      file_name, split, place, duration, background, place_in_keywords, n_events
    {out}/teaching.json   generator parameters (written last: marks a complete set)
    {out}/README.md, and ATTRIBUTION.md for a folder bank (authors, licences, links of the sources used)

Every clip has its own generator seeded by ``(seed, split, index)``, so the same seed gives
bit-identical files. Banks: ``"procedural"`` (30 classes, always offline) or a folder with a
``manifest.csv`` (``file, label, license`` and optionally ``author, source_url``), e.g. the real sound
effects in ``shared/data/soundbank-modsounds``. Every file of a folder bank is checked first
(:func:`hybridlib.data.audio_io.check_audio_file`, full decode): missing, unreadable, empty, non-finite
and silent files (placeholders happen in real banks), and names that lead out of the bank folder (an absolute
path, ``..``, a NUL byte, a symbolic link to outside: :class:`hybridlib.util.filenames.FolderGuard`) are left
out, all of them named at once in
``teaching.json`` (``bank_excluded``) and by the command line; ``bad_audio="error"`` stops instead.

The set is written atomically: into a temporary sibling folder renamed into place when complete, so a
failed or interrupted run leaves nothing half-made behind (and the next run does not refuse a partial folder).
A disk without room for the set's clips is named before the first clip (:func:`hybridlib.util.files.check_free_space`).

Measured generation time (2 shared CPU cores, noisy): see the CLI output and notebook 01; the smoke set
(32/16/16) took 7.5 s and the default (600/150/150) 88 s wall (51 s CPU) here,
writing 573 MB of wav.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from hybridlib.data import sound_synthesis as synth
from hybridlib.data.items import DatasetError
from hybridlib.data.splits import DATASET_SPLITS
from hybridlib.data.tables import read_csv_rows, write_csv_rows
from hybridlib.util.filenames import FolderGuard
from hybridlib.util.files import DiskFull, check_free_space, disk_full_errno, disk_full_message

SPLITS = DATASET_SPLITS["teaching"]
FULL_CLIPS = (600, 150, 150)
SMOKE_CLIPS = (32, 16, 16)
SAMPLE_RATE = synth.SAMPLE_RATE
CLIPS_PER_WORKER = 128  # a generation worker pays ~1 s to start: below this many clips each, stay serial
FORMAT_VERSION = 1

# Probabilities of the metadata model (see the module docstring).
P_MAIN_TAGGED = 0.85
P_OTHER_TAGGED = 0.35
P_PLACE_TAGGED = 0.75
P_CS_TAG = 0.9
P_CAPTION_PLACE = 0.3
P_BACKGROUND = 0.7
N_EVENTS_P = (0.25, 0.35, 0.25, 0.15)  # 1..4 events
LEVEL_DB = (-34.0, -16.0)
LOUD_DB, QUIET_DB = -21.0, -29.0
COUNT_WORDS = {1: "once", 2: "twice", 3: "three times"}


@dataclass
class Event:
    cls: synth.SoundClass
    onset: float
    offset: float
    level_db: float
    count: int | None
    signal: np.ndarray

    @property
    def loudness(self) -> str:
        return "loud" if self.level_db >= LOUD_DB else "quiet" if self.level_db <= QUIET_DB else "normal"

    @property
    def prominence(self) -> float:
        return self.level_db + 10 * np.log10(max(self.offset - self.onset, 0.05))


# ---------------------------------------------------------------- banks
class ProceduralBank:
    """The built-in synthesized classes of :mod:`hybridlib.data.sound_synthesis`."""

    name = "procedural"
    license = "CC0 1.0 (generated by hybridlib)"
    excluded: dict[str, str] = {}

    def __init__(self):
        self.classes = list(synth.CLASSES)

    def render(self, cls, rng, max_dur):
        x, count = synth.synthesize(cls, rng, max_dur)
        return x, count, []

    def attribution(self, used: set[str]) -> str | None:
        return None


class FolderBank:
    """Labelled clips from a folder with ``manifest.csv`` (``file, label, license[, author, source_url]``).

    Each label becomes one class; an instance is one of its files (random gain, random excerpt of at
    most the scene length). The licences of the files used are written to the clip's metadata row and
    to ``ATTRIBUTION.md``.
    """

    def __init__(self, folder: str | Path, bad_audio: str = "exclude", progress: bool = False):
        from hybridlib.data.audio_io import (
            BAD_AUDIO_POLICIES,
            AudioError,
            BadAudioError,
            check_audio_file,
            describe_bad_audio,
        )
        from hybridlib.util.progress import progress_bar as tqdm

        if bad_audio not in BAD_AUDIO_POLICIES:
            raise ValueError(f"bad_audio must be one of {BAD_AUDIO_POLICIES}, got {bad_audio!r}")
        self.folder = Path(folder)
        manifest = self.folder / "manifest.csv"
        rows = read_csv_rows(manifest, ["file", "label", "license"])
        if not rows:
            raise DatasetError(f"{manifest}: no rows")
        self.rows = {r["file"]: r for r in rows}
        self.excluded: dict[str, str] = {}  # file -> why it was left out
        by_label: dict[str, list[str]] = {}
        guard = FolderGuard(self.folder, "bank folder")
        for r in tqdm(rows, desc="checking bank audio", disable=not progress, leave=False):
            path, refusal = guard.locate(r["file"])
            if refusal is not None:  # left out and named; nothing at that path is opened
                self.excluded[r["file"]] = refusal
                continue
            try:
                check_audio_file(path, "full")
            except AudioError as exc:
                self.excluded[r["file"]] = str(exc)
                continue
            by_label.setdefault(r["label"].strip().lower(), []).append(r["file"])
        if self.excluded and bad_audio == "error":
            raise BadAudioError(describe_bad_audio(self.excluded, f"bank {self.folder}", limit=50))
        if not by_label:
            raise DatasetError(f"{manifest}: no usable audio file ("
                               + describe_bad_audio(self.excluded, limit=5) + ")")
        self.files = by_label
        place_names = sorted(synth.PLACES)
        self.classes = []
        for i, label in enumerate(sorted(by_label)):
            places = (place_names[i % len(place_names)], place_names[(i * 7 + 3) % len(place_names)])
            self.classes.append(synth.SoundClass(
                name=label, label=label, recipe=None,
                clauses=(f"a {label} sound is heard", f"there is a sound of {label}", f"{label} can be heard"),
                nouns=(f"a {label} sound", f"the sound of {label}"),
                keywords=tuple(dict.fromkeys([*label.split(), label])), places=places))
        self.name = str(self.folder)
        self._cache: dict[str, np.ndarray] = {}

    @property
    def license(self) -> str:
        return "see ATTRIBUTION.md"

    def _load(self, file: str) -> np.ndarray:
        if file not in self._cache:
            from hybridlib.data.audio_io import load_audio

            self._cache[file] = load_audio(self.folder / file, SAMPLE_RATE).numpy().astype(np.float64)
        return self._cache[file]

    def render(self, cls, rng, max_dur):
        files = self.files[cls.name]
        file = files[int(rng.integers(len(files)))]
        x = self._load(file)
        n = int(max_dur * SAMPLE_RATE)
        if len(x) > n:
            start = int(rng.integers(0, len(x) - n + 1))
            x = x[start:start + n]
        peak = np.abs(x).max()
        return x / peak, None, [file]

    def attribution(self, used: set[str]) -> str:
        lines = ["# Attribution", "",
                 f"Clips of this dataset are mixed from sound effects in `{self.folder.name}` "
                 "(listed below with author, licence and source). Clips that use a CC BY-SA source are "
                 "themselves CC BY-SA; each clip's licences are in the `license` column of its metadata CSV.", "",
                 "| file | label | author | license | source |", "|---|---|---|---|---|"]
        for file in sorted(used):
            r = self.rows[file]
            lines.append(f"| {file} | {r['label']} | {r.get('author', '')} | {r['license']} | {r.get('source_url', '')} |")
        return "\n".join(lines) + "\n"


def get_bank(bank: str | Path, bad_audio: str = "exclude", progress: bool = False):
    if str(bank) == "procedural":
        return ProceduralBank()
    path = Path(bank)
    if not (path / "manifest.csv").is_file():
        raise DatasetError(f"bank {bank!r}: expected 'procedural' or a folder holding manifest.csv")
    return FolderBank(path, bad_audio=bad_audio, progress=progress)


# ---------------------------------------------------------------- scenes
def _active_rms(x: np.ndarray) -> float:
    """RMS over the part of the event that sounds (10 ms envelope above 5 % of its maximum)."""
    win = max(1, int(0.01 * SAMPLE_RATE))
    env = np.convolve(np.abs(x), np.ones(win) / win, mode="same")
    active = env > 0.05 * env.max()
    return float(np.sqrt(np.mean(x[active] ** 2)))


def _pick_classes(rng, classes, place: str, n: int) -> list:
    weights = np.array([4.0 if place in c.places else 1.0 for c in classes])
    chosen: list = []
    while len(chosen) < n:
        available = [i for i, c in enumerate(classes)
                     if c not in chosen and not any(c.twin == o.name for o in chosen)]
        if not available:
            break
        w = weights[available] / weights[available].sum()
        chosen.append(classes[available[int(rng.choice(len(available), p=w))]])
    return chosen


def make_scene(rng: np.random.Generator, bank) -> dict:
    """Mix one scene: returns dict(audio, place, duration, events, background)."""
    duration = float(np.round(rng.uniform(5.0, 10.0), 2))
    n = int(duration * SAMPLE_RATE)
    place = str(rng.choice(sorted(synth.PLACES)))
    n_events = int(rng.choice([1, 2, 3, 4], p=N_EVENTS_P))
    mix = np.zeros(n)
    events, sources = [], []
    for cls in _pick_classes(rng, bank.classes, place, n_events):
        x, count, used = bank.render(cls, rng, duration)
        sources += used
        level = float(rng.uniform(*LEVEL_DB))
        x = x * (10 ** (level / 20) / max(_active_rms(x), 1e-9))
        start = int(rng.integers(0, max(1, n - len(x) + 1)))
        m = min(len(x), n - start)
        mix[start:start + m] += x[:m]
        events.append(Event(cls, start / SAMPLE_RATE, (start + m) / SAMPLE_RATE, level, count, x[:m]))
    bg_kind = "none"
    if rng.random() < P_BACKGROUND:
        bg, bg_kind = synth.background(rng, n)
        mix += bg * 10 ** (rng.uniform(-52, -42) / 20)
    peak = np.abs(mix).max()
    if peak > 0.98:  # scale the whole scene down; recorded levels follow
        gain_db = 20 * np.log10(0.98 / peak)
        mix *= 0.98 / peak
        for ev in events:
            ev.level_db += gain_db
    events.sort(key=lambda e: (e.onset, e.cls.name))
    return {"audio": mix, "place": place, "duration": duration, "events": events, "background": bg_kind,
            "sources": sources}


# ---------------------------------------------------------------- words
def _clause(ev: Event, rng) -> str:
    text = str(rng.choice(ev.cls.clauses))
    r = rng.random()
    if ev.cls.countable and ev.count and ev.count <= 3 and r < 0.35:
        text += " " + COUNT_WORDS[ev.count]
    elif ev.loudness == "loud" and r < 0.6:
        text += " " + str(rng.choice(["loudly", "nearby", "close by"]))
    elif ev.loudness == "quiet" and r < 0.6:
        text += " " + str(rng.choice(["in the distance", "faintly", "softly"]))
    return text


def _overlaps(a: Event, b: Event) -> bool:
    return b.onset < a.offset - 0.1


def make_caption(scene: dict, rng) -> tuple[str, list[str]]:
    """One caption naming a subset of the scene's events; returns (caption, names of mentioned classes)."""
    events = scene["events"]
    main = max(events, key=lambda e: e.prominence)
    chosen = [e for e in events if (rng.random() < 0.9 if e is main else rng.random() < 0.55)]
    if not chosen:
        chosen = [main]
    chosen = chosen[:3]
    if len(chosen) == 1:
        ev = chosen[0]
        form = rng.integers(3)
        text = (_clause(ev, rng) if form == 0 else f"the sound of {rng.choice(ev.cls.nouns)}" if form == 1
                else f"{rng.choice(ev.cls.nouns)} can be heard")
    else:
        text = _clause(chosen[0], rng)
        for prev, cur in zip(chosen, chosen[1:]):
            if _overlaps(prev, cur):
                text += str(rng.choice([" while ", " as ", ", and meanwhile "])) + _clause(cur, rng)
            else:
                form = rng.integers(4)
                if form == 3:
                    text += f", followed by {rng.choice(cur.cls.nouns)}"
                else:
                    text += [", then ", ", and then ", ", and afterwards "][form] + _clause(cur, rng)
    if rng.random() < P_CAPTION_PLACE:
        phrase = str(rng.choice(synth.PLACES[scene["place"]]["phrases"]))
        text = f"{phrase}, {text}" if rng.random() < 0.5 else f"{text} {phrase}"
    return text[0].upper() + text[1:] + ".", [e.cls.name for e in chosen]


def make_captions(scene: dict, rng, n: int = 5) -> tuple[list[str], dict[str, int]]:
    """``n`` distinct captions and how many of them mention each class."""
    captions, mentions = [], {}
    for _ in range(50 * n):
        text, names = make_caption(scene, rng)
        if text not in captions:
            captions.append(text)
            for name in names:
                mentions[name] = mentions.get(name, 0) + 1
        if len(captions) == n:
            break
    return captions, mentions


def make_keywords(scene: dict, rng) -> tuple[list[str], set[str], bool]:
    """Uploader-style OS keywords; returns (keywords, classes named, place named)."""
    events = scene["events"]
    main = max(events, key=lambda e: e.prominence)
    words: list[str] = []
    named: set[str] = set()
    for ev in events:
        if rng.random() < (P_MAIN_TAGGED if ev is main else P_OTHER_TAGGED):
            k = min(2 if ev is main and rng.random() < 0.5 else 1, len(ev.cls.keywords))
            words += [str(w) for w in rng.choice(ev.cls.keywords, size=k, replace=False)]
            named.add(ev.cls.name)
    place_named = rng.random() < P_PLACE_TAGGED
    if place_named:
        pk = synth.PLACES[scene["place"]]["keywords"]
        words += [str(w) for w in rng.choice(pk, size=int(rng.integers(1, 3)), replace=False)]
    n_distract = int(rng.integers(0, 4))
    words += [str(w) for w in rng.choice(synth.DISTRACTOR_KEYWORDS, size=n_distract, replace=False)]
    while len(set(words)) < 3:  # Freesound asks for at least three tags
        words.append(str(rng.choice(synth.DISTRACTOR_KEYWORDS)))
    words = list(dict.fromkeys(words))
    rng.shuffle(words)
    return words, named, place_named


def make_tags(scene: dict, rng) -> list[str]:
    return [e.cls.label for e in scene["events"] if rng.random() < P_CS_TAG]


# ---------------------------------------------------------------- writer
def _clip_rng(seed: int, split_index: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, split_index, index]))


def make_teaching_set(out: str | Path, seed: int = 0, n_clips: tuple[int, int, int] = FULL_CLIPS,
                      bank: str | Path = "procedural", progress: bool = True, overwrite: bool = False,
                      bad_audio: str = "exclude", workers: int | None = None) -> Path:
    """Generate the teaching set into ``out`` (see the module docstring) and return ``out``.

    ``workers``: processes that synthesise clips side by side (None: one per core for sets of at least
    ``CLIPS_PER_WORKER`` clips per worker, else this process); the files are the same for any number.

    ``out`` must be empty or absent unless ``overwrite`` (the old set is replaced only once the new one is
    complete; only a folder holding a teaching set, ``teaching.json``, is ever replaced). ``bad_audio``: what to do with unusable files of a folder bank (``exclude`` and record them
    in ``teaching.json``, or ``error``).
    """

    out = Path(out)
    if len(n_clips) != 3 or any(isinstance(c, bool) or int(c) < 1 for c in n_clips):
        raise DatasetError(f"n_clips must be three positive counts (development, validation, evaluation), "
                           f"got {n_clips}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise DatasetError(f"{out} is not empty; choose another folder or pass overwrite=True (--force)")
        if not (out / "teaching.json").is_file():  # only a set this generator wrote is ever replaced
            raise DatasetError(f"{out} is not empty and holds no teaching set (no teaching.json): it was not written "
                               "by make-teaching-set, so even --force leaves it alone; choose another folder")
    source = get_bank(bank, bad_audio=bad_audio, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    # 16-bit clips of at most 10 s (7.5 s on average) plus their tables: refused before a clip is made when the
    # disk cannot hold them (libsndfile reports a full disk without its cause, so it is checked first)
    check_free_space(out.parent, int(sum(int(c) for c in n_clips) * (10.0 * SAMPLE_RATE * 2 + 2000)),
                     f"a teaching set of {sum(int(c) for c in n_clips)} clips")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        try:
            _write_teaching_set(tmp, seed, n_clips, bank, source, progress, workers)
        except Exception as exc:
            code = disk_full_errno(exc)
            if code is None:
                raise
            raise DiskFull(disk_full_message(out, code, None)) from None
        if out.exists() and overwrite:
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, out)  # atomic; replaces an empty folder, fails on a non-empty one
            except OSError as exc:
                raise DatasetError(f"{out} was filled by someone else while the teaching set was generated "
                                   f"({exc.strerror}); nothing was written") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _make_clip(source, seed: int, s_idx: int, split: str, i: int, audio_dir: Path) -> dict:
    """Clip ``i`` of split ``split``: its audio written to ``audio_dir``, its table rows returned. Everything
    comes from the clip's own random generator, so clips can be made in any order or process."""
    rng = _clip_rng(seed, s_idx, i)
    scene = make_scene(rng, source)
    name = f"teach_{split[:3]}_{i:04d}.wav"
    sf.write(audio_dir / name, scene["audio"].astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    captions, mentions = make_captions(scene, rng)
    keywords, named, place_named = make_keywords(scene, rng)
    tags = make_tags(scene, rng)
    licenses = sorted({source.rows[f]["license"] for f in scene["sources"]}) if scene["sources"] else []
    events = [{"file_name": name, "split": split, "class": ev.cls.name, "label": ev.cls.label,
               "onset": f"{ev.onset:.3f}", "offset": f"{ev.offset:.3f}", "level_db": f"{ev.level_db:.2f}",
               "count": ev.count or "", "in_keywords": int(ev.cls.name in named), "in_tags": int(ev.cls.label in tags),
               "mentioned": mentions.get(ev.cls.name, 0)} for ev in scene["events"]]
    return {
        "sources": sorted(scene["sources"]),
        "caption": {"file_name": name, **{f"caption_{k + 1}": c for k, c in enumerate(captions)}},
        "metadata": {"file_name": name, "keywords": ";".join(keywords), "sound_id": f"{s_idx}{i:05d}",
                     "sound_link": "", "start_end_samples": f"[0, {len(scene['audio'])}]",
                     "manufacturer": "hybridlib teaching set",
                     "license": ";".join(licenses) if licenses else source.license, "tags": ";".join(tags)},
        "events": events,
        "scene": {"file_name": name, "split": split, "place": scene["place"], "duration": f"{scene['duration']:.2f}",
                  "background": scene["background"], "place_in_keywords": int(place_named),
                  "n_events": len(scene["events"])},
    }


_WORKER_SOURCE = None  # the bank, in a generation worker process


def _set_worker_source(source) -> None:
    global _WORKER_SOURCE
    _WORKER_SOURCE = source


def _make_clip_in_worker(task: tuple) -> dict:
    return _make_clip(_WORKER_SOURCE, *task)


def _write_teaching_set(out: Path, seed: int, n_clips, bank, source, progress: bool,
                        workers: int | None = None) -> None:
    from hybridlib.util.progress import progress_bar as tqdm
    from hybridlib.util.workers import default_workers, spawn_pool

    csv_dir = out / "CLOTHO_v2.1" / "clotho_csv_files"
    tasks = []
    for s_idx, (split, count) in enumerate(zip(SPLITS, n_clips)):
        audio_dir = out / "CLOTHO_v2.1" / "clotho_audio_files" / split
        audio_dir.mkdir(parents=True, exist_ok=True)
        tasks += [(seed, s_idx, split, i, audio_dir) for i in range(int(count))]
    # one process per core for the full set (synthesis is numpy on one thread); a small set is quicker here
    workers = default_workers(len(tasks) // CLIPS_PER_WORKER) if workers is None else max(1, int(workers))
    bar = tqdm(total=len(tasks), desc="teaching set", unit="clip", disable=not progress)
    if workers == 1:
        clips = []
        for task in tasks:
            clips.append(_make_clip(source, *task))
            bar.update(1)
    else:
        from concurrent.futures.process import BrokenProcessPool

        try:
            with spawn_pool(workers, initializer=_set_worker_source, initargs=(source,)) as pool:
                clips = []
                for clip in pool.map(_make_clip_in_worker, tasks, chunksize=8):  # in task order
                    clips.append(clip)
                    bar.update(1)
        except BrokenProcessPool:  # e.g. a script without `if __name__ == "__main__":` cannot spawn workers
            print("[teaching] worker processes could not run; generating in this process", flush=True)
            bar.reset()
            clips = [_make_clip(source, *task) for task in tasks]
    bar.close()
    used = {f for clip in clips for f in clip["sources"]}
    for split in SPLITS:
        rows = [clip for clip, task in zip(clips, tasks) if task[2] == split]
        write_csv_rows(csv_dir / f"clotho_captions_{split}.csv",
                       ["file_name"] + [f"caption_{k}" for k in range(1, 6)], [c["caption"] for c in rows])
        write_csv_rows(csv_dir / f"clotho_metadata_{split}.csv",
                       ["file_name", "keywords", "sound_id", "sound_link", "start_end_samples", "manufacturer",
                        "license", "tags"], [c["metadata"] for c in rows])
    event_rows = [e for clip in clips for e in clip["events"]]
    scene_rows = [clip["scene"] for clip in clips]
    write_csv_rows(out / "events.csv", ["file_name", "split", "class", "label", "onset", "offset", "level_db",
                                        "count", "in_keywords", "in_tags", "mentioned"], event_rows)
    write_csv_rows(out / "scenes.csv", ["file_name", "split", "place", "duration", "background",
                                        "place_in_keywords", "n_events"], scene_rows)
    attribution = source.attribution(used)
    if attribution:
        (out / "ATTRIBUTION.md").write_text(attribution)
    (out / "README.md").write_text(_readme(seed, n_clips, source))
    info = {"generator": "hybridlib.data.teaching", **generation_settings(seed, n_clips, bank),
            "sample_rate": SAMPLE_RATE, "classes": [c.label for c in source.classes],
            "twins": sorted({tuple(sorted((c.name, c.twin))) for c in source.classes if c.twin}),
            "bank_excluded": dict(source.excluded)}
    (out / "teaching.json").write_text(json.dumps(info, indent=2) + "\n")


def _readme(seed, n_clips, source) -> str:
    return (f"# hybrid-retrieval teaching set\n\nGenerated by `python -m hybridlib make-teaching-set` "
            f"(seed {seed}, clips {'/'.join(str(c) for c in n_clips)}, bank `{source.name}`).\n"
            "Clotho v2.1 layout; `events.csv` and `scenes.csv` hold the ground truth. How and why it is built:\n"
            "see the docstring of `hybridlib.data.teaching`. Licence of procedural audio and all texts: CC0 1.0.\n")


def generation_settings(seed: int, n_clips, bank) -> dict:
    """The settings that determine a teaching set's content, as recorded in its ``teaching.json``."""
    return {"format_version": FORMAT_VERSION, "seed": int(seed),
            "n_clips": dict(zip(SPLITS, (int(c) for c in n_clips))), "bank": str(bank)}


def ensure_teaching_set(root: str | Path | None = None, smoke: bool = False, seed: int = 0,
                        bank: str | Path = "procedural", progress: bool = True,
                        n_clips: tuple[int, int, int] | None = None) -> Path:
    """Return the teaching set's root, generating it first if missing.

    Default root :func:`hybridlib.paths.teaching_dir(smoke) <hybridlib.paths.teaching_dir>`; default size
    ``SMOKE_CLIPS`` (32/16/16) or ``FULL_CLIPS`` (600/150/150), unless ``n_clips`` is given.

    Generation goes to a temporary sibling folder that is renamed into place when complete, so a
    concurrent caller never sees half a dataset (the loser of a race discards its copy). An existing set
    generated with other settings (seed, clip counts, bank or format version) raises :class:`DatasetError`
    naming them rather than being silently reused.
    """
    from hybridlib.paths import teaching_dir

    root = Path(root) if root is not None else teaching_dir(smoke)
    size = tuple(n_clips) if n_clips is not None else (SMOKE_CLIPS if smoke else FULL_CLIPS)
    wanted = generation_settings(seed, size, bank)
    marker = root / "teaching.json"
    if marker.is_file():
        info = _read_info(root, f"delete {root} to generate the teaching set again")
        differ = {k: (info.get(k), v) for k, v in wanted.items() if info.get(k) != v}
        if differ:
            detail = "; ".join(f"{k}: {have!r} there, {want!r} asked for" for k, (have, want) in differ.items())
            raise DatasetError(f"{root} holds a teaching set generated with other settings ({detail}); "
                               "delete it or pass another root (a data_root named explicitly is used as it is)")
        return root
    if root.exists() and any(root.iterdir()):
        raise DatasetError(not_a_teaching_set(root))
    try:
        make_teaching_set(root, seed=seed, n_clips=size, bank=bank, progress=progress)  # atomic
    except DatasetError:
        if not marker.is_file():
            raise
        return ensure_teaching_set(root, smoke, seed, bank, progress, n_clips)  # lost a race: check the winner's
    return root


def _read_info(root: Path, advice: str) -> dict:
    """The settings in ``root/teaching.json``; :class:`DatasetError` ending in ``advice`` when it is damaged."""
    marker = root / "teaching.json"
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise DatasetError(f"{marker} is damaged ({type(exc).__name__}); {advice}") from None
    if not isinstance(info, dict):
        raise DatasetError(f"{marker} is damaged (not a JSON object); {advice}")
    return info


def not_a_teaching_set(root: str | Path) -> str:
    """Why ``root`` (an existing folder without ``teaching.json``) cannot serve as the teaching set, and what to do:
    a folder holding another dataset (Clotho, AudioCaps, ...) is named with the setting that reads it; anything
    else is a folder to empty or replace (a set interrupted by an older version, or an unrelated folder)."""
    from hybridlib.data.detect import LOOKED_FOR, find_datasets

    root = Path(root)
    found = find_datasets(root)
    if found:
        names = ", ".join(f.label for f in found)
        first = found[0].dataset
        return (f"{root} holds {names}, not a teaching set: read it with --set dataset={first} (a config: "
                f"dataset: {first}; a notebook: DATA alone, or DATASET = {first!r})")
    return (f"{root} exists but is not a complete teaching set (no teaching.json) and holds no other dataset "
            f"(looked for {LOOKED_FOR}); to generate a teaching set there, empty it first "
            f"(python -m hybridlib make-teaching-set --out {root}), or choose another root")


def use_teaching_set(root: str | Path) -> Path:
    """A teaching set a user named (``data_root``, ``DATA``): used as it is, whatever seed, size or bank made it
    (``make-teaching-set --out ROOT --bank DIR --clips ...``). Only the default root is generated and checked
    against the default settings (:func:`ensure_teaching_set`).

    :class:`DatasetError` when ``root`` holds no ``teaching.json`` (:func:`not_a_teaching_set` says what it
    holds instead) or a damaged one.
    """
    root = Path(root)
    marker = root / "teaching.json"
    if not root.is_dir():
        raise DatasetError(f"teaching set {root} does not exist; make one with "
                           f"`python -m hybridlib make-teaching-set --out {root}`")
    if not marker.is_file():
        raise DatasetError(not_a_teaching_set(root))
    info = _read_info(root, "generate the set again")
    if info.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{root} holds a teaching set of format version {info.get('format_version')!r}, this "
                           f"version reads {FORMAT_VERSION}; generate it again (make-teaching-set --out NEW_ROOT)")
    return root
