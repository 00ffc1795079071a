"""What noticing a changed audio file costs: a ``stat`` stamp vs a content hash vs decoding (the full check).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_audio_stamp.py                         # the teaching set + Clotho-sized clips
    .venv/bin/python benchmarks/bench_audio_stamp.py --folder data/teaching  # any folder of audio files
    .venv/bin/python benchmarks/bench_audio_stamp.py --clotho-clips 100      # how many Clotho-sized clips to write

The audio check (:func:`hybridlib.data.audio_io.validate_items`), the feature cache and the waveform cache
remember their work per file by :func:`hybridlib.util.files.file_stamp` (one ``stat``: path, size, modification
and change time). A content hash would also catch a rewrite that keeps size, modification and change time, but
needs every byte read on every run. This measures, per folder: the stamps, SHA-256 and BLAKE2b over every
file (read in 1-MiB blocks, files already in the page cache: the disk's own read time comes on top when they are
not), and the full check's decode (``check_audio_file(check="full")``). Clotho-sized clips are written to a
temporary folder (22.5 s white noise, 44.1 kHz, 16-bit mono: ClothoV2.1's mean length; 5,929 clips of 15-30 s,
about 37 h of audio, 11.7 GB as WAV) and the totals are scaled to ClothoV2.1. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from hybridlib.data.audio_io import check_audio_file
from hybridlib.util.files import file_stamp

CLOTHO_CLIPS, CLOTHO_SECONDS, SR = 5929, 22.5, 44100


def hash_files(files, algorithm: str) -> float:
    start = time.perf_counter()
    for path in files:
        digest = hashlib.new(algorithm)
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        digest.hexdigest()
    return time.perf_counter() - start


def measure(name: str, files: list[Path], scale: float = 1.0) -> None:
    total = sum(p.stat().st_size for p in files)
    hash_files(files, "blake2b")  # warm the page cache
    rows = []
    start = time.perf_counter()
    for path in files:
        file_stamp(path)
    rows.append(("stat stamp", time.perf_counter() - start))
    for algorithm in ("sha256", "blake2b"):
        rows.append((algorithm, hash_files(files, algorithm)))
    start = time.perf_counter()
    for path in files:
        check_audio_file(path, "full")
    rows.append(("decode (full check)", time.perf_counter() - start))
    print(f"\n{name}: {len(files)} files, {total / 1e6:.0f} MB" + (f" (x{scale:.1f} for ClothoV2.1)" if scale != 1 else ""))
    print(f"{'':22s}{'seconds':>10s}{'MB/s':>10s}" + (f"{'ClothoV2.1 s':>14s}" if scale != 1 else ""))
    for label, seconds in rows:
        line = f"{label:22s}{seconds:10.3f}{total / 1e6 / max(seconds, 1e-9):10.0f}"
        print(line + (f"{seconds * scale:14.1f}" if scale != 1 else ""))


def main() -> None:
    from hybridlib.paths import teaching_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=None, help="folder of audio files (default: the teaching set if there)")
    parser.add_argument("--clotho-clips", type=int, default=100, help="Clotho-sized clips to write (0: none)")
    args = parser.parse_args()
    folder = Path(args.folder) if args.folder else teaching_dir()
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"))
    if files:
        measure(str(folder), files)
    else:
        print(f"{folder}: no audio files (make the teaching set first, or give --folder)")
    if args.clotho_clips > 0:
        rng = np.random.default_rng(0)
        with tempfile.TemporaryDirectory() as tmp:
            made = []
            for i in range(args.clotho_clips):
                path = Path(tmp) / f"clip{i:04d}.wav"
                sf.write(path, rng.uniform(-0.5, 0.5, int(CLOTHO_SECONDS * SR)), SR, subtype="PCM_16")
                made.append(path)
            measure(f"Clotho-sized clips ({CLOTHO_SECONDS} s, 44.1 kHz, 16-bit)", made, CLOTHO_CLIPS / len(made))


if __name__ == "__main__":
    main()
