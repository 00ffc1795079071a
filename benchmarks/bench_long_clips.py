"""Peak memory of frame extraction with long clips: bounded batches and chunked encoding vs whole clips.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_long_clips.py                   # 10-minute and 60-minute clips
    .venv/bin/python benchmarks/bench_long_clips.py --minutes 10      # one length only
    .venv/bin/python benchmarks/bench_long_clips.py --whole           # also the old way (whole clip padded
                                                                      #   with short clips; needs a lot of RAM)

Each folder holds seven 8-second clips and one long clip (white noise at 44.1 kHz, the sfx-cnn rate). Every
configuration runs in its own process extracting into a fresh cache with ``FeatureCache.audio_frames``
(batch size 8), so its peak resident set size (``ru_maxrss`` of that process) is its own:

* ``bounded``: the defaults - batches of at most 30 s x batch size of padded audio, clips over 60 s
  encoded alone in 60-s pieces (:mod:`hybridlib.models.audio.chunking`);
* ``whole clip alone``: the long clip in a batch of its own but encoded in one piece (chunking off);
* ``old batching`` (``--whole``): what the cache did before, eight clips per batch padded to the longest,
  no chunking. Skipped unless asked for, and then only when the estimate fits in the available memory.

The figures include the decoded waveform itself (4 bytes per sample: 106 MB per 10 minutes at 44.1 kHz),
which no batching can avoid, and the imports (~0.5 GB). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SR = 44100
SHORT_CLIPS, SHORT_SECONDS = 7, 8.0
SCENARIOS = {
    "bounded": {},
    "whole clip alone": {"chunk_seconds": 1e9},
    "old batching": {"chunk_seconds": 1e9, "max_batch_seconds": 1e12},
}


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def available_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def make_folder(folder: Path, minutes: float) -> None:
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(SHORT_CLIPS):
        sf.write(folder / f"short_{i}.wav", (0.1 * rng.standard_normal(int(SHORT_SECONDS * SR))).astype("float32"),
                 SR, subtype="PCM_16")
    with sf.SoundFile(folder / "long.wav", "w", SR, 1, subtype="PCM_16") as f:
        left = int(minutes * 60 * SR)
        while left > 0:  # written a minute at a time
            n = min(left, 60 * SR)
            f.write((0.1 * rng.standard_normal(n)).astype("float32"))
            left -= n


def child(folder: str, settings: dict) -> None:
    """Extract the folder's clips into a fresh cache; print peak memory and time as JSON."""
    import torch

    from hybridlib.data import Item
    from hybridlib.features.cache import FeatureCache
    from hybridlib.models.audio import build_audio_backbone

    backbone = build_audio_backbone("sfx-cnn")
    items = [Item(p.name, p, ["x"], dataset="bench") for p in sorted(Path(folder).glob("*.wav"))]
    base = peak_rss_mb()
    with tempfile.TemporaryDirectory() as cache_root:
        start = time.perf_counter()
        frames = FeatureCache(cache_root).audio_frames(items, backbone, batch_size=8, progress=False, **settings)
        seconds = time.perf_counter() - start
    print(json.dumps({"peak_mb": peak_rss_mb(), "before_mb": base, "seconds": seconds,
                      "long_frames": int(frames["long.wav"].shape[0]), "threads": torch.get_num_threads()}))


def estimate_old_mb(minutes: float) -> float:
    """Old batching: eight clips padded to the long one; ~2.2 GB per padded 10 minutes of sfx-cnn input
    (the issue's measurement: 16.5 GB for a 10-minute clip in a batch of eight)."""
    return 16500 * minutes / 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60], help="lengths of the long clip")
    parser.add_argument("--whole", action="store_true", help="also run the old batching (memory permitting)")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "SETTINGS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], json.loads(args.child[1]))
        return 0

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} on {os.cpu_count()} cores; {available_mb() / 1024:.1f} GB available; "
          f"{SHORT_CLIPS} x {SHORT_SECONDS:g} s clips + one long clip, sfx-cnn, batch 8")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            folder = Path(tmp) / f"{minutes:g}min"
            make_folder(folder, minutes)
            for name, settings in SCENARIOS.items():
                if name == "old batching" and not args.whole:
                    rows.append((minutes, name, None, None, None, f"skipped (estimate {estimate_old_mb(minutes) / 1024:.0f}"
                                 " GB; --whole runs it when that fits)"))
                    continue
                if name != "bounded" and (name == "old batching" and estimate_old_mb(minutes) > 0.8 * available_mb()
                                          or name == "whole clip alone" and 2600 * minutes / 10 > 0.8 * available_mb()):
                    rows.append((minutes, name, None, None, None, "skipped: would not fit in the available memory"))
                    continue
                proc = subprocess.run([sys.executable, __file__, "--child", str(folder), json.dumps(settings)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    rows.append((minutes, name, None, None, None, f"failed: {proc.stderr.strip().splitlines()[-1:]}"))
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append((minutes, name, r["peak_mb"], r["peak_mb"] - r["before_mb"], r["seconds"],
                             f"{r['long_frames']} frames of the long clip"))
                print(f"  {minutes:g} min, {name}: peak {r['peak_mb'] / 1024:.2f} GB "
                      f"(+{(r['peak_mb'] - r['before_mb']) / 1024:.2f} GB over the loaded model) in {r['seconds']:.0f} s",
                      flush=True)
    print()
    print(f"{'long clip':>9}  {'configuration':<17} {'peak RSS':>9} {'extraction':>11} {'time':>7}  note")
    for minutes, name, peak, delta, seconds, note in rows:
        cells = (f"{peak / 1024:8.2f}G {delta / 1024:10.2f}G {seconds:6.0f}s" if peak is not None
                 else f"{'-':>9} {'-':>11} {'-':>7}")
        print(f"{minutes:>6g} min  {name:<17} {cells}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
