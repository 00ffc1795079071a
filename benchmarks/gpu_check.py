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
FLOPs per step / step time, hybridlib.gpu_plan.COSTS), which rescales the README's GPU-hour estimates (made at
10 TFLOP/s). The rehearsal's clips are tiled to the datasets' lengths (Clotho 15-30 s, AudioCaps 10 s), but the
weights are random stand-ins: speed and memory are the real architecture's, the retrieval scores are not.

Without CUDA it says so and exits with 0 (nothing to measure on a CPU).
"""

from __future__ import annotations

import argparse
import statistics
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


def step_flops(batch: dict, cfg, model) -> float:
    """Counted FLOPs of one training step (three forwards of the trained encoders, hybridlib.gpu_plan.COSTS)."""
    from hybridlib.gpu_plan import COSTS
    from hybridlib.models.audio import backbone_sample_rate

    m = cfg.model_config()
    total = 0.0
    if m.audio_trainable and "waveform" in batch:
        seconds = float(batch["lengths"].sum()) / backbone_sample_rate(m.audio_backbone)
        total += COSTS[m.audio_backbone]["gflops"] * seconds
    if m.text_trainable and model.text_encoder is not None:
        texts = list(batch.get("captions", [])) + [t for t in batch.get("metadata_text", []) if t]
        tokens = sum(model.text_encoder.token_counts(texts))
        standin = Path(m.text_encoder).name
        total += COSTS.get(standin, COSTS["bert-base-uncased"])["gflops"] * tokens
    return 3 * total * 1e9


def check_row(name: str, root: Path, runs_dir: Path, steps: int, device: str, num_workers: int) -> None:
    import torch

    from hybridlib.features.loader import TrainingLoader
    from hybridlib.features.prepare import prepare_data
    from hybridlib.losses import get_loss
    from hybridlib.reproduce import row_config, table_entries
    from hybridlib.training import build_model, train
    from hybridlib.training.optim import build_optimizer, optimizer_step
    from hybridlib.util.devices import to_device

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
    optimizer = build_optimizer(model, cfg)
    loss_fn = get_loss(cfg.loss, **cfg.loss_kwargs)
    scaler = torch.amp.GradScaler("cuda")
    loader = TrainingLoader(data.train, cfg.batch_size, 0, num_workers=cfg.num_workers, pin_memory=True)
    torch.cuda.reset_peak_memory_stats(device)
    waits, times, flops = [], [], []
    epoch = 0
    while len(times) < steps + 1:  # the first step warms up (cuDNN autotuning, allocator)
        epoch += 1
        batches = iter(loader.epoch(epoch))
        while len(times) < steps + 1:
            t_wait = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                break
            batch = to_device(batch, torch.device(device))
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.float16):
                sim = model(batch)
                loss = loss_fn(sim.float(), same_item=batch["same_item"])
            optimizer_step(loss, model, optimizer, scaler, cfg.grad_clip)
            torch.cuda.synchronize(device)
            waits.append(start - t_wait)
            times.append(time.perf_counter() - start)
            flops.append(step_flops(batch, cfg, model))
        if epoch > 100:
            break
    step = statistics.median(times[1:]) if len(times) > 1 else float("nan")
    wait = statistics.median(waits[1:]) if len(waits) > 1 else float("nan")
    tflops = statistics.median(flops[1:]) / step / 1e12 if len(times) > 1 else float("nan")
    print(f"[gpu_check] {name}: batch {cfg.batch_size}, {len(times) - 1} timed steps: step {step * 1000:.0f} ms, "
          f"input-pipeline wait {wait * 1000:.0f} ms/step ({loader.num_workers} workers), peak GPU memory "
          f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB, sustained {tflops:.1f} TFLOP/s "
          f"(README estimates assume 10: scale their hours by {10 / tflops:.2f}); "
          f"{time.perf_counter() - t0:.0f} s in all", flush=True)


if __name__ == "__main__":
    sys.exit(main())
