"""GPU check: one hybrid row and one Mei et al. row on the rehearsal data, with mixed precision, on CUDA.

Usage (from the repository root, on a machine with a CUDA GPU)::

    .venv/bin/python benchmarks/gpu_check.py                        # builds a rehearsal in a temporary folder
    .venv/bin/python benchmarks/gpu_check.py --rehearsal DIR --steps 20 --device cuda:1

For each row (``hybrid-clotho-late-os``: EfficientAT mn40 + BERT-base, late fusion; ``mei-audiocaps-finetune-nt-xent``:
PANNs ResNet38 + BERT-base) it first runs the whole training path (``train()``: two epochs on the rehearsal with
AMP, validation, checkpoint, evaluation), then times ``--steps`` optimisation steps at the row's batch size and
prints: the median step time (forward, loss, backward, Adam; synchronised), the input-pipeline wait per step (time
to get the next batch from the training loop's :class:`~hybridlib.features.loader.TrainingLoader` with
``--num-workers`` worker processes, pinned memory and the waveform cache), the peak GPU memory, and the sustained TFLOP/s (counted
FLOPs per step / step time, hybridlib.gpu_plan.step_flops), and the memory estimate of hybridlib.gpu_plan beside the
measured peak. The step measurement is hybridlib.training.performance.measure_steps, which notebook 09 runs too, which rescales the README's GPU-hour estimates (made at
10 TFLOP/s). The rehearsal's clips are tiled to the datasets' lengths (Clotho 15-30 s, AudioCaps 10 s), but the
weights are random stand-ins: speed and memory are the real architecture's, the retrieval scores are not.

Without CUDA it says so and exits with 0 (nothing to measure on a CPU).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROWS = ("hybrid-clotho-late-os", "mei-audiocaps-finetune-nt-xent")
SIZES = {"clotho": {"development": 40, "validation": 8, "evaluation": 8},
         "audiocaps": {"train": 40, "val": 8, "test": 8}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rehearsal", default=None, help="a rehearsal folder (default: built in a temporary folder)")
    parser.add_argument("--steps", type=int, default=10, help="timed optimisation steps per row")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers (the config's num_workers)")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help="config names (experiments/hybrid|mei)")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("gpu_check needs a CUDA GPU (torch.cuda.is_available() is False here): nothing to measure on a CPU. "
              "The CPU rehearsal of every config is tests/test_rehearsal.py.")
        return 0
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        root = Path(args.rehearsal) if args.rehearsal else Path(tmp) / "rehearsal"
        if not (root / "rehearsal.json").is_file():
            from hybridlib.reproduce import make_rehearsal

            t0 = time.perf_counter()
            print(f"[gpu_check] building a rehearsal with realistic clip lengths in {root} ...", flush=True)
            make_rehearsal(root, realistic_lengths=True, sizes=SIZES)
            print(f"[gpu_check] rehearsal ready in {time.perf_counter() - t0:.0f} s", flush=True)
        for name in args.rows:
            check_row(name, root, Path(tmp) / "runs", args.steps, args.device, args.num_workers)
    return 0


def check_row(name: str, root: Path, runs_dir: Path, steps: int, device: str, num_workers: int) -> None:
    import torch

    from hybridlib.features.loader import TrainingLoader
    from hybridlib.features.prepare import prepare_data
    from hybridlib.gpu_plan import estimate, step_flops
    from hybridlib.losses import get_loss
    from hybridlib.reproduce import row_config, table_entries
    from hybridlib.training import build_model, train
    from hybridlib.training.ingredients import amp_precision
    from hybridlib.training.optim import build_optimizer
    from hybridlib.training.performance import measure_steps

    entry = next((e for e in table_entries("all") if e.name == name), None)
    if entry is None:
        print(f"[gpu_check] unknown row {name!r}", file=sys.stderr)
        return
    cfg = row_config(entry, {"device": device, "amp": True, "num_threads": None, "captions_per_clip": None,
                             "num_workers": num_workers}, rehearsal=root)
    t0 = time.perf_counter()
    torch.cuda.reset_peak_memory_stats(device)
    result = train(cfg.replace(seed=0), runs_dir / name, progress=False)
    print(f"[gpu_check] {name}: train() on CUDA with AMP: {result.seconds:.0f} s for {cfg.epochs} epochs, "
          f"finished={result.finished}, test t2a_R@1 {result.test_metrics['t2a_R@1']:.1f} (random weights), "
          f"peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB", flush=True)

    data = prepare_data(cfg, progress=False, roles=("train",))
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    loader = TrainingLoader(data.train, cfg.batch_size, 0, num_workers=cfg.num_workers, pin_memory=True)
    # the first step warms up (cuDNN autotuning, allocator); the shared measurement of notebook 09
    timed = measure_steps(model, _epochs(loader), get_loss(cfg.loss, **cfg.loss_kwargs), build_optimizer(model, cfg),
                          device, steps, amp_precision(cfg, device), warmup=1, grad_clip=cfg.grad_clip,
                          flops=lambda batch: step_flops(batch, cfg, model))
    step, tflops = timed.step_seconds, timed.tflops
    print(f"[gpu_check] {name}: batch {cfg.batch_size}, {len(timed.steps)} timed steps ({timed.precision}): step "
          f"{step * 1000:.0f} ms, input-pipeline wait {timed.wait_seconds * 1000:.0f} ms/step ({loader.num_workers} "
          f"workers), peak GPU memory {timed.peak_bytes / 2**30:.1f} GiB (estimate "
          f"{estimate(cfg)['memory_gb']:.1f} GB, hybridlib.gpu_plan), sustained {tflops:.1f} TFLOP/s "
          f"(README estimates assume 10: scale their hours by {10 / tflops:.2f}); "
          f"{time.perf_counter() - t0:.0f} s in all", flush=True)


def _epochs(loader):
    """The loader's batches, epoch after epoch."""
    epoch = 0
    while epoch < 1000:
        epoch += 1
        yield from loader.epoch(epoch)


if __name__ == "__main__":
    sys.exit(main())
