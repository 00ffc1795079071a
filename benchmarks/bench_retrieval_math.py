"""Benchmark of the retrieval math: vectorized metrics against a per-query loop, and loss step times.

Run:  .venv/bin/python benchmarks/bench_retrieval_math.py [--repeats 5] [--threads N]

1. ``text_to_audio`` / ``audio_to_text`` on a random similarity matrix of the Clotho evaluation size
   (5225 captions x 1045 audios) against the evaluation loop of Mei et al.'s public code (argsort every
   row, find the target's position), re-written here; prints both times, the ratio and the largest
   difference between the metric values (random floats have no ties, so both must agree exactly).
2. forward + backward time of each loss at B = 32, 128, 512, and, for triplet-weighted, against the
   per-anchor Python loop of the reference implementation (the vectorized version has no loop).

Timings on a shared CPU are noisy; the medians of several repeats (after one warm-up call) are printed,
with one torch thread by default.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from hybridlib.losses import LOSSES, get_loss
from hybridlib.metrics import audio_to_text, text_to_audio


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, lazy initialisation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def loop_text_to_audio(sim: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Per-query loop: argsort each caption's row, position of its audio (0-based rank)."""
    ranks = np.zeros(len(sim))
    for q in range(len(sim)):
        inds = np.argsort(sim[q])[::-1]
        ranks[q] = np.where(inds == target[q])[0][0]
    return {"mAP@10": 100.0 * np.sum(1 / (ranks[ranks < 10] + 1)) / len(ranks),
            "R@1": 100.0 * np.mean(ranks < 1), "R@5": 100.0 * np.mean(ranks < 5),
            "R@10": 100.0 * np.mean(ranks < 10)}


def loop_audio_to_text(sim: np.ndarray, per_audio: int = 5) -> dict[str, float]:
    """Per-audio loop; captions ``per_audio * a ... per_audio * a + per_audio - 1`` belong to audio a."""
    n = len(sim)
    best = np.zeros(n)
    ap = np.zeros(n)
    for a in range(n):
        inds = np.argsort(sim[a])[::-1]
        ranks = np.sort([np.where(inds == q)[0][0] for q in range(per_audio * a, per_audio * (a + 1))])
        best[a] = ranks[0]
        within = ranks[ranks < 10] + 1
        ap[a] = np.sum(np.arange(1, len(within) + 1) / within) / per_audio
    return {"mAP@10": 100.0 * ap.mean(), "R@1": 100.0 * np.mean(best < 1),
            "R@5": 100.0 * np.mean(best < 5), "R@10": 100.0 * np.mean(best < 10)}


def loop_triplet_weighted(sim: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Reference per-anchor loop (one Python iteration per row and per column)."""
    b = sim.shape[0]
    terms = []
    for mat in (sim, sim.t()):
        for i in range(b):
            pos = mat[i, i]
            neg = torch.cat([mat[i, :i], mat[i, i + 1:]])
            neg = neg[neg + margin > pos]
            if len(neg) == 0:
                continue
            hard = neg.max()
            terms.append(torch.clamp(0.2 * pos**2 - 0.7 * pos + 0.5, min=0)
                         + torch.clamp(0.9 * hard**2 - 0.4 * hard + 0.03, min=0))
    return torch.stack(terms).sum() / b if terms else sim.sum() * 0


def bench_metrics(n_audio: int, per_audio: int, repeats: int) -> None:
    n_captions = n_audio * per_audio
    gen = torch.Generator().manual_seed(0)
    sim = torch.randn(n_captions, n_audio, generator=gen)
    target = torch.arange(n_audio).repeat_interleave(per_audio)
    sim[torch.arange(n_captions), target] += 2.0  # a model of moderate quality: metrics away from 0
    sim_np, target_np = sim.numpy(), target.numpy()  # float32, as in the reference code

    print(f"\n== metrics on a [{n_captions}, {n_audio}] similarity matrix ({repeats} repeats, median) ==")
    for name, fast, slow, loop_repeats in [
        ("text_to_audio", lambda: text_to_audio(sim, target), lambda: loop_text_to_audio(sim_np, target_np),
         max(1, repeats // 2)),
        ("audio_to_text", lambda: audio_to_text(sim.t(), target),
         lambda: loop_audio_to_text(np.ascontiguousarray(sim_np.T), per_audio), max(1, repeats // 2)),
    ]:
        t_fast = median_time(fast, repeats)
        t_slow = median_time(slow, loop_repeats)
        got, ref = fast(), slow()
        diff = max(abs(got[k] - ref[k]) for k in ref)
        print(f"{name:14s} vectorized {1e3 * t_fast:8.1f} ms | per-query argsort loop {1e3 * t_slow:8.1f} ms"
              f" | speed-up {t_slow / t_fast:6.1f}x | max |difference| {diff:.2e} pp")
        print(f"{'':14s} values: " + ", ".join(f"{k} {v:.2f}" for k, v in got.items()))
    bytes_ = sim.numel() * sim.element_size()
    t_pass = median_time(lambda: sim.sum(), repeats)
    print(f"one read of the matrix (sum, {bytes_ / 2**20:.1f} MiB): {1e3 * t_pass:.1f} ms "
          f"(the memory-bandwidth floor; the metrics compare every element once per relevant item)")


def bench_losses(batch_sizes: list[int], repeats: int) -> None:
    print(f"\n== losses: forward + backward ({repeats} repeats, median) ==")
    print(f"{'loss':18s}" + "".join(f"{'B=' + str(b):>12s}" for b in batch_sizes))
    gen = torch.Generator().manual_seed(0)
    sims = {b: torch.nn.functional.normalize(torch.randn(b, 64, generator=gen), dim=1) for b in batch_sizes}
    caps = {b: torch.nn.functional.normalize(sims[b] + 0.8 * torch.randn(b, 64, generator=gen), dim=1)
            for b in batch_sizes}

    def step(fn, b):
        a = sims[b].clone().requires_grad_(True)
        (fn(a @ caps[b].t())).backward()

    for name in LOSSES:
        fn = get_loss(name)
        row = "".join(f"{1e3 * median_time(lambda fn=fn, b=b: step(fn, b), repeats):10.2f}ms" for b in batch_sizes)
        print(f"{name:18s}{row}")
    row = ""
    for b in batch_sizes:
        reps = max(1, repeats // 3) if b >= 512 else repeats
        row += f"{1e3 * median_time(lambda b=b: step(loop_triplet_weighted, b), reps):10.2f}ms"
    print(f"{'weighted (loop)':18s}{row}   <- per-anchor Python loop, for comparison")
    sim = sims[batch_sizes[0]] @ caps[batch_sizes[0]].t()
    diff = (get_loss("triplet-weighted")(sim) - loop_triplet_weighted(sim)).abs().item()
    print(f"triplet-weighted vectorized vs loop: |difference| = {diff:.2e}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--audios", type=int, default=1045, help="Clotho evaluation split: 1045 clips")
    parser.add_argument("--captions-per-audio", type=int, default=5)
    parser.add_argument("--batch-sizes", default="32,128,512")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the loops are single-threaded too, and on a shared "
                             "machine multi-threaded timings fluctuate; 0 keeps torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); timings on a shared CPU are noisy")
    bench_metrics(args.audios, args.captions_per_audio, args.repeats)
    bench_losses([int(b) for b in args.batch_sizes.split(",")], args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
