"""Miniature datasets for a rehearsal of the papers' runs: real audio, real rows, the official layouts.

:func:`make_rehearsal_data` writes, below one folder, small versions of every dataset the experiment
configs read, in exactly the layouts the loaders (and aac-datasets) read, so a config runs unchanged apart
from ``data_root`` (``python -m hybridlib make-rehearsal --out DIR``; the architecture stand-ins and the
overrides each row needs come from :mod:`hybridlib.reproduce`)::

    DIR/CLOTHO_v2.1/clotho_csv_files/clotho_{captions,metadata}_{split}.csv    aac-datasets layout
    DIR/CLOTHO_v2.1/clotho_audio_files/{split}/*.wav                          44.1 kHz mono
    DIR/zenodo-clotho/clotho_{captions,metadata}_{split}.csv, {split}/*.wav    extracted Zenodo layout (same clips)
    DIR/AUDIOCAPS/csv_files_v1/{train,val,test}.csv                           aac-datasets layout
    DIR/AUDIOCAPS/audio_32000Hz/{split}/{youtube_id}_{start_time}.flac          32 kHz mono
    DIR/AUDIOCAPS/class_labels_indices.csv, balanced_train_segments.csv        AudioSet label files (CS tags)
    DIR/WavCaps/json_files/FreeSound/fsd_final.json                            id, caption, tags, description, ...
    DIR/WavCaps/Audio/FreeSound/{id}.flac                                      32 kHz mono
    DIR/WavCaps/blacklist_clotho.full.v2.csv                                   ids also in Clotho (index, id)
    DIR/rehearsal.json, DIR/ATTRIBUTION.md                                     what was built from what

Sources (the shared reference data, :func:`hybridlib.paths.shared_data_dir`):

* **audio**: the real sound effects of ``soundbank-modsounds`` (decoded with soundfile, mixed to mono,
  resampled with torchaudio to each dataset's rate) and the real Clotho clip ``Distorted AM Radio noise.wav``
  (in the Clotho development split with its full record). Clips keep their natural length (0.5-3 s; the
  real Clotho clip its first ``real_clip_seconds``) unless ``realistic_lengths`` tiles them to the datasets'
  durations (Clotho 15-30 s, AudioCaps and WavCaps 10 s), e.g. for a GPU check.
* **Clotho**: real caption rows of the v2.1 development CSV with their real keywords and FreeSound fields
  from the v1 metadata (ISO-8859-1, as released). The shared data has keywords only for development clips,
  so the rehearsal's validation and evaluation splits also take development rows.
* **AudioCaps**: real caption rows (train: one caption per clip; val/test: a real clip's five captions) and
  real AudioSet label rows. None of AudioCaps' 51 308 clips is in the shared ``balanced_train_segments.csv``
  (their labels live in ``unbalanced_train_segments.csv``, not shared), so each rehearsal clip takes its
  identity (``YTID``, start) and labels from a real balanced-train segment row and its captions from real
  AudioCaps rows that mention one of the segment's labels; the CS tags the loader joins are therefore real
  AudioSet rows.
* **WavCaps FreeSound**: entries built from real FreeSound records (Clotho v1 metadata: ``sound_id`` is the
  FreeSound/WavCaps id, keywords are the FreeSound tags, author and link); ``caption`` is one of the clip's
  human captions and ``description`` another one (standing in for FreeSound's description and WavCaps'
  generated caption, neither of which is in the shared data). One entry is also a Clotho evaluation clip and
  is listed in the Clotho blacklist, so the loader's exclusion is exercised.

Each rehearsal clip pairs a sound with rows that match it: a word of the sound's label is one of the Clotho
clip's keywords, one of the AudioSet labels, one of the caption's words (falling back to the next free row
when nothing matches), so captions, metadata and audio roughly agree. Everything is deterministic.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hybridlib.data.items import DatasetError
from hybridlib.data.tables import read_csv_rows, read_text

CLOTHO_SPLITS = ("development", "validation", "evaluation")
AUDIOCAPS_SPLITS = ("train", "val", "test")
DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "clotho": {"development": 5, "validation": 3, "evaluation": 3},
    "audiocaps": {"train": 6, "val": 3, "test": 3},
    "wavcaps-fs": {"train": 6},
}
REAL_CLOTHO_CLIP = "Distorted AM Radio noise.wav"
CLOTHO_RATE, AUDIOCAPS_RATE, WAVCAPS_RATE = 44100, 32000, 32000
CLOTHO_METADATA_COLUMNS = ["file_name", "keywords", "sound_id", "sound_link", "start_end_samples", "manufacturer",
                           "license"]
MANIFEST = "rehearsal.json"
OWNED = ".hybridlib-rehearsal"  # written first: an interrupted build is still known as a rehearsal folder
_TOKEN = re.compile(r"[a-z]+")


def words(text: str) -> set[str]:
    """Lower-case word tokens of three letters or more, with a trailing plural ``s`` folded (``bells`` -> ``bell``)."""
    out = set()
    for w in _TOKEN.findall(text.lower()):
        if len(w) >= 3:
            out.add(w[:-1] if w.endswith("s") and len(w) > 3 else w)
    return out


@dataclass
class Sound:
    """One sound of the sound bank (manifest row)."""

    path: Path
    label: str
    duration: float
    author: str
    license: str
    source_url: str

    @property
    def words(self) -> set[str]:
        return words(self.label)


@dataclass
class _Build:
    out: Path
    realistic: bool
    real_clip_seconds: float
    clips: list[dict] = field(default_factory=list)  # manifest entries
    used_sounds: set = field(default_factory=set)


def shared_sources(shared: Path) -> dict[str, Path]:
    """The shared files the rehearsal reads; :class:`DatasetError` naming the first one missing."""
    files = {
        "soundbank": shared / "soundbank-modsounds" / "manifest.csv",
        "clotho_captions": shared / "clotho" / "v2.1" / "clotho_captions_development.csv",
        "clotho_metadata": shared / "clotho" / "v1" / "clotho_metadata_development.csv",
        "clotho_clip": shared / "clotho" / "audio" / REAL_CLOTHO_CLIP,
        "audiocaps": shared / "audiocaps" / "v1",
        "audioset_classes": shared / "audioset" / "class_labels_indices.csv",
        "audioset_segments": shared / "audioset" / "balanced_train_segments.csv",
    }
    for name, path in files.items():
        if not path.exists():
            raise DatasetError(f"rehearsal source missing: {path} ({name}); the rehearsal is built from the shared "
                               "reference data (hybridlib.paths.shared_data_dir())")
    return files


def load_soundbank(manifest: Path, min_seconds: float = 0.5, max_seconds: float = 3.0) -> list[Sound]:
    """The sound bank's sounds between ``min_seconds`` and ``max_seconds`` long, one of each label first (then
    the second of each, ...), labels in alphabetical order: consecutive picks are different sounds."""
    rows = read_csv_rows(manifest, ["file", "label", "duration_s", "author", "license", "source_url"])
    sounds = sorted((Sound(manifest.parent / r["file"], r["label"].strip(), float(r["duration_s"]), r["author"],
                           r["license"], r["source_url"]) for r in rows), key=lambda s: s.path.name)
    sounds = [s for s in sounds if min_seconds <= s.duration <= max_seconds]
    rank: dict[str, int] = {}
    order = []
    for s in sounds:
        order.append((rank.get(s.label, 0), s.label, s.path.name, s))
        rank[s.label] = rank.get(s.label, 0) + 1
    return [s for *_, s in sorted(order, key=lambda t: t[:3])]


def _pair(sounds: list[Sound], used: set, candidates: list, key) -> tuple[Sound, object, str | None]:
    """The first free sound and the first free candidate sharing a word with it (``key(candidate)`` -> words);
    falls back to the first free pair. Marks the sound used; the caller removes the candidate."""
    free = [s for s in sounds if s.path not in used]
    if not free or not candidates:
        raise DatasetError("the shared data ran out of sounds or rows for the rehearsal (asked for too many clips)")
    for sound in free:
        for cand in candidates:
            common = sound.words & key(cand)
            if common:
                used.add(sound.path)
                return sound, cand, sorted(common)[0]
    used.add(free[0].path)
    return free[0], candidates[0], None


# ---------------------------------------------------------------------------------------------- audio
def _read_mono(path: Path):
    import numpy as np
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.mean(axis=1)), rate


def _write_audio(src: Path, dst: Path, rate: int, seconds: float | None, crop: float | None = None) -> float:
    """Decode ``src``, mix to mono, resample to ``rate``, tile to ``seconds`` (or crop to ``crop``), write ``dst``
    (wav or flac by suffix, 16-bit PCM as the releases). Returns the written duration in seconds."""
    import numpy as np
    import soundfile as sf
    import torch

    from hybridlib.data.audio_io import resample

    wave, src_rate = _read_mono(src)
    wave = resample(torch.from_numpy(wave), src_rate, rate).numpy()
    if crop is not None:
        wave = wave[: int(crop * rate)]
    if seconds is not None:
        n = int(round(seconds * rate))
        wave = np.tile(wave, -(-n // max(len(wave), 1)))[:n]
    peak = float(np.abs(wave).max()) if len(wave) else 0.0
    if peak > 1.0:
        wave = wave / peak
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(dst), wave, rate, subtype="PCM_16")
    return len(wave) / rate


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_csv(path: Path, header: list[str], rows: list[dict], encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.DictWriter(fh, fieldnames=header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in header} for r in rows)


# ---------------------------------------------------------------------------------------------- Clotho
def _clotho(b: _Build, src: dict, sounds: list[Sound], sizes: dict) -> list[dict]:
    captions = {r["file_name"]: r for r in read_csv_rows(src["clotho_captions"], ["file_name", "caption_1"])}
    meta_rows = read_csv_rows(src["clotho_metadata"], CLOTHO_METADATA_COLUMNS)
    meta = {r["file_name"]: r for r in meta_rows}
    candidates = sorted(n for n in meta if n in captions and n != REAL_CLOTHO_CLIP)
    pool = [(n, words(meta[n]["keywords"].replace(";", " "))) for n in candidates]
    aac = b.out / "CLOTHO_v2.1"
    zenodo = b.out / "zenodo-clotho"
    chosen: dict[str, list[dict]] = {}
    for split in CLOTHO_SPLITS:
        rows = []
        if split == "development":  # the real clip with its full record
            duration = _write_audio(src["clotho_clip"], aac / "clotho_audio_files" / split / REAL_CLOTHO_CLIP,
                                    CLOTHO_RATE, None, None if b.realistic else b.real_clip_seconds)
            rows.append({"name": REAL_CLOTHO_CLIP, "sound": None, "match": "real Clotho clip", "duration": duration})
        while len(rows) < sizes[split]:
            sound, (name, _), match = _pair(sounds, b.used_sounds, pool, key=lambda c: c[1])
            pool = [c for c in pool if c[0] != name]
            seconds = (15 + ((len(b.clips) + len(rows)) * 7) % 16) if b.realistic else None
            duration = _write_audio(sound.path, aac / "clotho_audio_files" / split / name, CLOTHO_RATE, seconds)
            rows.append({"name": name, "sound": sound, "match": match, "duration": duration})
        for r in rows:
            b.clips.append(_entry("clotho", split, r["name"], r["sound"], r["match"], r["duration"],
                                  keywords=meta[r["name"]]["keywords"]))
            _link_or_copy(aac / "clotho_audio_files" / split / r["name"], zenodo / split / r["name"])
        names = [r["name"] for r in rows]
        cap_header = ["file_name"] + [f"caption_{i}" for i in range(1, 6)]
        for folder in (aac / "clotho_csv_files", zenodo):
            _write_csv(folder / f"clotho_captions_{split}.csv", cap_header, [captions[n] for n in names])
            _write_csv(folder / f"clotho_metadata_{split}.csv", CLOTHO_METADATA_COLUMNS, [meta[n] for n in names],
                       encoding="iso-8859-1")
        chosen[split] = [meta[n] | captions[n] for n in names]
    used = {row["file_name"] for rows in chosen.values() for row in rows}
    # the rows left for WavCaps, then one evaluation clip that WavCaps will share with Clotho
    return [meta[c] | captions[c] for c in candidates if c not in used] + chosen["evaluation"][:1]


# ---------------------------------------------------------------------------------------------- AudioCaps
def _audioset(src: dict):
    classes = read_csv_rows(src["audioset_classes"], ["index", "mid", "display_name"])
    class_words = {c["mid"]: words(c["display_name"]) for c in classes}
    segments = []
    for line in read_text(src["audioset_segments"]).splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        values = next(csv.reader([line], skipinitialspace=True))
        mids = [m.strip() for m in values[3].split(",") if m.strip()]
        segments.append({"ytid": values[0], "start": values[1], "line": line, "mids": mids,
                         "words": set().union(*(class_words.get(m, set()) for m in mids))})
    return class_words, segments


def _audiocaps(b: _Build, src: dict, sounds: list[Sound], sizes: dict) -> None:
    _, segments = _audioset(src)
    base = b.out / "AUDIOCAPS"
    seg_pool = list(segments)
    used_segments = []
    for split in AUDIOCAPS_SPLITS:
        rows = read_csv_rows(src["audiocaps"] / f"{split}.csv", ["audiocap_id", "youtube_id", "start_time", "caption"])
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            groups.setdefault((r["youtube_id"], r["start_time"]), []).append(r)
        cap_pool = [(g, set().union(*(words(r["caption"]) for r in g))) for g in groups.values()]
        out_rows = []
        for _ in range(sizes[split]):
            # a sound and a segment sharing a word, then captions sharing one of the segment's label words
            sound, seg, match = _pair(sounds, b.used_sounds, seg_pool, key=lambda s: s["words"])
            seg_pool = [s for s in seg_pool if s is not seg]
            wanted = (sound.words & seg["words"]) or seg["words"]
            group = next((g for g, w in cap_pool if w & wanted), cap_pool[0][0])
            cap_pool = [c for c in cap_pool if c[0] is not group]
            start = int(float(seg["start"]))
            clip = f"{seg['ytid']}_{start}"
            duration = _write_audio(sound.path, base / "audio_32000Hz" / split / f"{clip}.flac", AUDIOCAPS_RATE,
                                    10.0 if b.realistic else None)
            out_rows += [{**r, "youtube_id": seg["ytid"], "start_time": str(start)} for r in group]
            used_segments.append(seg)
            b.clips.append(_entry("audiocaps", split, clip, sound, match, duration, audioset_mids=seg["mids"],
                                  captions_from=[r["audiocap_id"] for r in group]))
        _write_csv(base / "csv_files_v1" / f"{split}.csv", ["audiocap_id", "youtube_id", "start_time", "caption"],
                   out_rows)
    shutil.copyfile(src["audioset_classes"], base / "class_labels_indices.csv")
    lines = [f"# rehearsal subset of AudioSet balanced_train_segments.csv: {len(used_segments)} real rows",
             "# YTID, start_seconds, end_seconds, positive_labels"] + [s["line"] for s in used_segments]
    (base / "balanced_train_segments.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- WavCaps
def _wavcaps(b: _Build, sounds: list[Sound], rows: list[dict], sizes: dict) -> None:
    base = b.out / "WavCaps"
    overlap = rows[-1]  # a Clotho evaluation clip, listed in the blacklist
    pool = [(r, words(r["keywords"].replace(";", " "))) for r in rows[:-1]]
    entries = []
    for _ in range(sizes["train"]):
        sound, (row, _), match = _pair(sounds, b.used_sounds, pool, key=lambda c: c[1])
        pool = [c for c in pool if c[0] is not row]
        entries.append((row, sound, match))
    entries.append((overlap, None, "also a Clotho evaluation clip"))
    data = []
    clotho_audio = b.out / "CLOTHO_v2.1" / "clotho_audio_files" / "evaluation"
    for row, sound, match in entries:
        clip = row["sound_id"].strip()
        src = sound.path if sound is not None else clotho_audio / row["file_name"]
        duration = _write_audio(src, base / "Audio" / "FreeSound" / f"{clip}.flac", WAVCAPS_RATE,
                                10.0 if b.realistic else None)
        data.append({"id": clip, "file_name": row["file_name"], "href": row["sound_link"],
                     "tags": [t.strip() for t in row["keywords"].split(";") if t.strip()],
                     "description": row["caption_2"], "author": row["manufacturer"], "duration": round(duration, 3),
                     "download_link": row["sound_link"] + "/download/", "caption": row["caption_1"]})
        b.clips.append(_entry("wavcaps-fs", "train", clip, sound, match, duration, keywords=row["keywords"],
                              in_clotho_blacklist=sound is None))
    json_path = base / "json_files" / "FreeSound" / "fsd_final.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"num_captions_per_audio": 1, "data": data}, indent=1) + "\n", encoding="utf-8")
    _write_csv(base / "blacklist_clotho.full.v2.csv", ["index", "id"],
               [{"index": 0, "id": overlap["sound_id"].strip()}])


# ---------------------------------------------------------------------------------------------- entry point
def _entry(dataset, split, clip, sound: Sound | None, match, duration, **extra) -> dict:
    source = {"file": str(sound.path.name), "label": sound.label, "author": sound.author, "license": sound.license,
              "source_url": sound.source_url} if sound is not None else {"file": REAL_CLOTHO_CLIP,
                                                                          "license": "CC0", "origin": "Clotho"}
    return {"dataset": dataset, "split": split, "clip": clip, "audio_source": source, "matched_word": match,
            "seconds": round(duration, 3), **extra}


def make_rehearsal_data(out: str | Path, shared: str | Path | None = None, sizes: dict | None = None,
                        realistic_lengths: bool = False, real_clip_seconds: float = 5.0) -> dict:
    """Build the miniature datasets below ``out`` (see the module docstring); returns the manifest (also
    written to ``out/rehearsal.json``, with ``ATTRIBUTION.md`` crediting every sound used).

    ``sizes`` overrides :data:`DEFAULT_SIZES` (clips per dataset and split). An earlier rehearsal in ``out`` is
    replaced; a non-empty folder that holds none (e.g. a real ``data/`` folder) is refused, nothing deleted.
    """
    from hybridlib.paths import shared_data_dir

    out = Path(out)
    src = shared_sources(Path(shared) if shared is not None else shared_data_dir())
    sizes = {k: {**v, **((sizes or {}).get(k, {}))} for k, v in DEFAULT_SIZES.items()}
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file() and not (out / OWNED).is_file():
        raise DatasetError(f"{out} is not empty and holds no rehearsal (no {MANIFEST}): the rehearsal replaces its "
                           "dataset folders, so it is only built into an empty folder or over an earlier rehearsal")
    out.mkdir(parents=True, exist_ok=True)
    (out / OWNED).write_text("a rehearsal folder of hybridlib (make-rehearsal); its dataset folders are replaced\n")
    for name in ("CLOTHO_v2.1", "zenodo-clotho", "AUDIOCAPS", "WavCaps"):  # ours: the folder holds a rehearsal
        shutil.rmtree(out / name, ignore_errors=True)
    b = _Build(out, realistic_lengths, real_clip_seconds)
    sounds = load_soundbank(src["soundbank"])
    left = _clotho(b, src, sounds, sizes["clotho"])
    _audiocaps(b, src, sounds, sizes["audiocaps"])
    _wavcaps(b, sounds, left, sizes["wavcaps-fs"])
    manifest = {"root": str(out.resolve()), "realistic_lengths": realistic_lengths, "sizes": sizes,
                "layouts": {"clotho": "CLOTHO_v2.1 (aac-datasets)", "clotho-zenodo": "zenodo-clotho",
                            "audiocaps": "AUDIOCAPS (aac-datasets, AudioSet label files inside)",
                            "wavcaps-fs": "WavCaps (aac-datasets)"},
                "clips": b.clips}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    credits = sorted({(c["audio_source"]["file"], c["audio_source"].get("author", ""), c["audio_source"]["license"],
                       c["audio_source"].get("source_url", "")) for c in b.clips})
    (out / "ATTRIBUTION.md").write_text(
        "# Sounds used in this rehearsal (soundbank-modsounds and Clotho)\n\n| file | author | licence | source |\n"
        "|---|---|---|---|\n" + "".join(f"| {f} | {a} | {lic} | {u} |\n" for f, a, lic, u in credits), encoding="utf-8")
    return manifest


def read_manifest(root: str | Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{root} is not a rehearsal folder (no {MANIFEST}); build one with "
                           "`python -m hybridlib make-rehearsal --out DIR`")
    return json.loads(path.read_text(encoding="utf-8"))
