"""Input pipeline of a trainable backbone: clips per second delivered at batch 32 for 30-s clips.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_pipeline.py                      # 96 clips of 30 s, read at 32 kHz
    .venv/bin/python benchmarks/bench_pipeline.py --clips 64 --workers 0 2 4 --no-flops

Clips: 30-s scenes in Clotho's format (44.1 kHz mono 16-bit wav) chained from the real sound effects in
``../shared/data/soundbank-modsounds``, written to a temporary folder; read at 32 kHz (efficientat-mn40's
rate, so every clip is resampled). Each row delivers one epoch (one caption per clip, batches of 32, whole
clips as with ``max_audio_seconds: null``); the consumer only touches the batch, so a row measures the
pipeline alone:

* ``today``: ``EncodedSplit.training_batches`` without a waveform cache - each clip decoded and resampled in
  the training process, one after the other (the training loop's batch source before ``TrainingLoader``);
* ``no cache``: ``TrainingLoader`` decoding in 0 / k worker processes;
* ``cold cache``: ``TrainingLoader``'s first epoch on an empty ``WaveformCache`` (decode, resample, write);
* ``fill``: ``WaveformCache.fill``, the one-time pass ``prepare_data`` makes (decode, resample, write);
* ``warm cache``: ``TrainingLoader`` reading the stored arrays (here from the OS page cache: the entries were
  just written; from a disk, 3.8 MB per clip at its read rate).

Then what a GPU step of efficientat-mn40 + bert-base at batch 32 needs: forward FLOPs counted with torch's
``FlopCounterMode`` on the real architectures at random initialisation (one 30-s clip; 2 x 32 sequences of
32 tokens, captions and metadata through the shared BERT), the backward taken as twice the forward (the
usual estimate), and the clips per second a pipeline must deliver at *assumed* effective GPU throughputs.

Asserts nothing; prints, per row, the best of ``--repeats`` runs, the machine and its load (``os.getloadavg``
before and after). On a shared machine run it twice, when the load is lowest.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path


def machine() -> str:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f} (1/5/15 min)".format(*os.getloadavg())


def make_clips(folder: Path, n: int, seconds: float, seed: int = 0) -> list:
    """``n`` scenes of ``seconds`` s chained from random sound-bank effects (44.1 kHz mono PCM-16 wav)."""
    import numpy as np
    import soundfile as sf

    from hybridlib.data import Item, load_audio
    from hybridlib.data.tables import read_csv_rows
    from hybridlib.paths import shared_data_dir

    bank = shared_data_dir() / "soundbank-modsounds"
    rows = read_csv_rows(bank / "manifest.csv", ["file", "label"])
    rng = np.random.default_rng(seed)
    decoded: dict[str, np.ndarray] = {}
    rate, total = 44100, int(seconds * 44100)
    items = []
    for i in range(n):
        parts, length = [], 0
        while length < total:
            row = rows[int(rng.integers(len(rows)))]
            if row["file"] not in decoded:
                decoded[row["file"]] = load_audio(bank / row["file"], rate, allow_silent=True).numpy()
            wave = decoded[row["file"]] * rng.uniform(0.2, 1.0)
            gap = np.zeros(int(rng.uniform(0.05, 1.0) * rate), dtype=np.float32)
            parts += [wave, gap]
            length += len(wave) + len(gap)
        scene = np.concatenate(parts)[:total]
        scene = 0.5 * scene / max(float(np.abs(scene).max()), 1e-6)
        path = folder / f"scene{i:03d}.wav"
        sf.write(path, scene, rate, subtype="PCM_16")
        items.append(Item(path.name, path, [f"scene {i}: " + row["label"]]))
    return items


def deliver(batches) -> tuple[int, float]:
    """Clips delivered and seconds taken (the consumer touches every batch's waveform)."""
    start, clips = time.perf_counter(), 0
    for batch in batches:
        clips += batch["waveform"].shape[0]
        float(batch["waveform"][:, ::4096].sum())
    return clips, time.perf_counter() - start


def gpu_step(batch: int, seconds: float, rate: int, tokens: int) -> dict:
    """Forward FLOPs of efficientat-mn40 on ``batch`` clips and bert-base on ``2 * batch`` sequences."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertConfig, BertModel

    from hybridlib.models.audio import build_audio_backbone

    audio = build_audio_backbone("efficientat-mn40", pretrained=False).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        audio(torch.randn(1, int(seconds * rate)) * 0.1)
    audio_fwd = counter.get_total_flops() * batch
    bert = BertModel(BertConfig()).eval()  # bert-base-uncased's published architecture, random weights
    ids = torch.randint(1000, 30000, (2 * batch, tokens))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        bert(input_ids=ids, attention_mask=torch.ones_like(ids))
    return {"audio_fwd": audio_fwd, "text_fwd": counter.get_total_flops(),
            "audio_params": sum(p.numel() for p in audio.parameters()),
            "text_params": sum(p.numel() for p in bert.parameters())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=96, help="clips per epoch (a multiple of the batch size)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=32000, help="the backbone's sample rate")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads of the training process (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per row; the best is printed")
    parser.add_argument("--no-flops", action="store_true", help="skip the GPU-step estimate")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from hybridlib.features.loader import TrainingLoader
    from hybridlib.features.splits import encode_split
    from hybridlib.features.waveform_cache import WaveformCache

    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} intra-op threads in the "
          f"training process, 1 per worker")
    print(f"before: {load()}")
    bs, rows = args.batch_size, []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        tmp = Path(tmp)
        (tmp / "clips").mkdir()
        start = time.perf_counter()
        items = make_clips(tmp / "clips", args.clips, args.seconds)
        print(f"{args.clips} clips of {args.seconds:g} s (44.1 kHz mono wav) made in {time.perf_counter() - start:.1f} s; "
              f"read at {args.rate} Hz, batches of {bs}")
        split = encode_split(items, "bench", metadata_kind=None, audio_cached=False, text_cached=False,
                             sample_rate=args.rate, max_audio_seconds=None, progress=False)

        def row(name, workers, measure):
            """Best of ``--repeats`` runs of ``measure(r) -> (clips, seconds, note)`` (the machine is shared)."""
            clips, seconds, note = max((measure(r) for r in range(args.repeats)), key=lambda m: m[0] / m[1])
            rows.append((name, workers, clips / seconds))
            print(f"  {name:10s} workers {workers!s:>2}: {clips / seconds:7.1f} clips/s  "
                  f"{clips / seconds / rows[0][2]:5.1f}x today  {note}", flush=True)

        def loader_epoch(cache, workers, epoch):
            loader = TrainingLoader(dataclasses.replace(split, waveform_cache=cache), bs, seed=0, num_workers=workers)
            return (*deliver(loader.epoch(epoch)), dict(loader.stats) if cache is not None else "")

        def cold(workers, r):
            cache = WaveformCache(tmp / f"cold-{workers}-{r}")
            out = loader_epoch(cache, workers, 1)
            cache.clear()
            return out

        def fill(workers, r):
            cache = WaveformCache(tmp / f"fill-{workers}-{r}")
            start = time.perf_counter()
            cache.fill(items, args.rate, num_workers=workers, progress=False)
            out = len(items), time.perf_counter() - start, dict(cache.stats)
            cache.clear()
            return out

        warm = WaveformCache(tmp / "warm")
        warm.fill(items, args.rate, progress=False)
        row("today", "-", lambda r: (*deliver(split.training_batches(bs, seed=0, epoch=r + 1)), ""))
        for w in args.workers:
            row("no cache", w, lambda r, w=w: loader_epoch(None, w, r + 1))
        for w in args.workers:
            row("cold cache", w, lambda r, w=w: cold(w, r))
        for w in args.workers:
            row("fill", w, lambda r, w=w: fill(w, r))
        for w in args.workers:
            row("warm cache", w, lambda r, w=w: loader_epoch(warm, w, r + 2))
    print(f"after: {load()}")

    if not args.no_flops:
        est = gpu_step(bs, args.seconds, args.rate, tokens=32)
        step = 3 * (est["audio_fwd"] + est["text_fwd"])  # forward + backward (about twice the forward)
        print(f"GPU step, efficientat-mn40 ({est['audio_params'] / 1e6:.1f} M parameters) on {bs} clips of "
              f"{args.seconds:g} s + bert-base ({est['text_params'] / 1e6:.1f} M) on {2 * bs} x 32 tokens: forward "
              f"{est['audio_fwd'] / 1e12:.2f} + {est['text_fwd'] / 1e12:.2f} TFLOP, with backward about "
              f"{step / 1e12:.1f} TFLOP; one batch of waveforms is {bs * args.seconds * args.rate * 4 / 1e6:.0f} MB")
        for tflops in (25, 50, 100):
            seconds = step / (tflops * 1e12)
            print(f"  at an effective {tflops:3d} TFLOP/s (assumed): {1000 * seconds:5.0f} ms per step -> the "
                  f"pipeline must deliver {bs / seconds:5.0f} clips/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
