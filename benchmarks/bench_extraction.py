"""Feature-extraction throughput: sfx-cnn clips/s and peak memory, text encoding, cache hits.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_extraction.py                 # 64 teaching-set clips, batch 1/8/16
    .venv/bin/python benchmarks/bench_extraction.py --clips 0       # every clip of the teaching set
    .venv/bin/python benchmarks/bench_extraction.py --smoke --clips 16 --batch-sizes 8

Every configuration extracts into a fresh temporary cache, so it measures computation (audio decoding
included); the cache-hit figure re-reads the last configuration's files. Peak memory is the process's
maximum resident set size (``ru_maxrss``), which only grows: read it per configuration as an upper bound.
Figures on a shared CPU are noisy; run twice and report the second.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="Clotho-layout root (default: the teaching set)")
    parser.add_argument("--smoke", action="store_true", help="use the smoke teaching set")
    parser.add_argument("--split", default="development")
    parser.add_argument("--clips", type=int, default=64, help="number of clips (0 = all)")
    parser.add_argument("--backbone", default="sfx-cnn")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--workers", type=int, default=1, help="audio decoding threads")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--texts", type=int, default=2000, help="captions to embed for the text benchmark")
    args = parser.parse_args(argv)

    import torch

    from hybridlib.data import ensure_teaching_set, load_clotho
    from hybridlib.data.audio_io import audio_info
    from hybridlib.features.cache import FeatureCache
    from hybridlib.models.audio import build_audio_backbone
    from hybridlib.models.text import build_text_encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.data or ensure_teaching_set(smoke=args.smoke)
    items = [it for it in load_clotho(root, args.split) if it.audio_path is not None]
    if args.clips:
        items = items[: args.clips]
    audio_seconds = sum(audio_info(it.audio_path)["duration"] for it in items)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(items)} clips, {audio_seconds:.0f} s audio"
    )

    backbone = build_audio_backbone(args.backbone)
    print(f"\n{args.backbone} extraction (computation + decoding, fresh cache each time)")
    print(f"{'batch':>6} {'clips/s':>9} {'audio s/s':>10} {'seconds':>8} {'peak RSS MB':>12}")
    last_root = None
    for bs in args.batch_sizes:
        tmp = tempfile.mkdtemp(prefix="bench-cache-")
        cache = FeatureCache(tmp)
        start = time.perf_counter()
        frames = cache.audio_frames(items, backbone, batch_size=bs, progress=False, num_workers=args.workers)
        seconds = time.perf_counter() - start
        assert len(frames) == len(items)
        print(
            f"{bs:>6} {len(items) / seconds:>9.2f} {audio_seconds / seconds:>10.1f} {seconds:>8.1f} {peak_rss_mb():>12.0f}"
        )
        last_root = tmp

    cache = FeatureCache(last_root)
    start = time.perf_counter()
    cache.audio_frames(items, backbone, progress=False)
    seconds = time.perf_counter() - start
    print(
        f"\ncache hit: {len(items)} clips in {seconds * 1000:.0f} ms ({seconds / len(items) * 1000:.2f} ms/clip)"
    )

    captions = list(dict.fromkeys(c for it in load_clotho(root, args.split) for c in it.captions))[
        : args.texts
    ]
    encoder = build_text_encoder("minilm")
    cache = FeatureCache(tempfile.mkdtemp(prefix="bench-text-"))
    start = time.perf_counter()
    cache.text_embeddings(captions, encoder, progress=False)
    seconds = time.perf_counter() - start
    print(
        f"minilm text encoding: {len(captions)} captions in {seconds:.1f} s ({len(captions) / seconds:.0f} texts/s)"
    )
    start = time.perf_counter()
    cache.text_embeddings(captions, encoder, progress=False)
    print(f"text cache hit: {(time.perf_counter() - start) * 1000:.0f} ms for {len(captions)} captions")
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
