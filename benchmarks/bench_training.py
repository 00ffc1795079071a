"""Training speed on the teaching set: data preparation from the cache, optimiser step time, whole runs.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_training.py                         # baseline, hybrid-late, hybrid-mid
    .venv/bin/python benchmarks/bench_training.py --configs loss-nt-xent --threads 1 2 --runs
    .venv/bin/python benchmarks/bench_training.py --smoke
    .venv/bin/python benchmarks/bench_training.py --track clotho-cpu --data DIR --threads 2   # the CPU track

``--track clotho-cpu`` times the configs of ``experiments/clotho-cpu`` on the Clotho-layout folder ``--data`` (real
Clotho, or a rehearsal with realistic clip lengths: ``make-rehearsal --realistic-lengths``): the step time does not
depend on the number of clips, so it also prints the seconds of one epoch and one validation pass scaled to
ClothoV2.1's size (``hybridlib.gpu_plan.DATASETS``; the validation pass scaled linearly in clips and captions):
estimates from measured times, for a folder smaller than Clotho.

Prints the time to load the encoded splits (features read from ``hybridlib.features.cache.FeatureCache``; the first
call on a cold cache also extracts them), the median time of one optimiser step (forward, loss, backward,
Adam) per config and torch thread count, and with ``--runs`` the wall time of one whole training run
(seed 0, the config's epochs, validation every epoch, evaluation at the end). Figures on a shared CPU are
noisy; run twice and report the second.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["baseline", "hybrid-late", "hybrid-mid"],
                        help="names in experiments/teaching/")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op thread counts")
    parser.add_argument("--steps", type=int, default=10, help="timed optimiser steps per setting")
    parser.add_argument("--runs", action="store_true", help="also time one whole training run per config")
    parser.add_argument("--smoke", action="store_true", help="use the smoke teaching set")
    parser.add_argument("--track", default=None, help="configs of experiments/TRACK instead (e.g. clotho-cpu)")
    parser.add_argument("--data", default=None, help="with --track: the dataset root (data_root)")
    args = parser.parse_args(argv)

    import torch

    from hybridlib.config import teaching_config
    from hybridlib.features.prepare import prepare_data
    from hybridlib.losses import get_loss
    from hybridlib.training import build_model, train
    from hybridlib.training.optim import build_optimizer

    if args.track:
        from hybridlib.config import experiments_dir, load_config

        folder = experiments_dir() / args.track
        names = args.configs if args.configs != parser.get_default("configs") else sorted(
            p.stem for p in folder.glob("[!_]*.yaml"))
        cfgs = {name: load_config(folder / f"{name}.yaml", tensorboard=False,
                                  **({"data_root": args.data} if args.data else {})) for name in names}
    else:
        cfgs = {name: teaching_config(name, smoke=args.smoke, tensorboard=False) for name in args.configs}
    t0 = time.perf_counter()
    prepared = {name: prepare_data(cfg, progress=False) for name, cfg in cfgs.items()}
    print(f"prepare_data (cached features) for {len(cfgs)} configs: {time.perf_counter() - t0:.1f} s")
    for name, cfg in cfgs.items():
        data = prepared[name]
        for threads in args.threads:
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            model = build_model(cfg)
            opt = build_optimizer(model, cfg)
            loss_fn = get_loss(cfg.loss, **cfg.loss_kwargs)
            batches = data.train.training_batches(cfg.batch_size, 0, 1, captions_per_clip=cfg.captions_per_clip)
            times = []
            for _, batch in zip(range(args.steps + 1), batches):
                start = time.perf_counter()
                loss = loss_fn(model(batch), same_item=batch["same_item"])
                opt.zero_grad()
                loss.backward()
                opt.step()
                times.append(time.perf_counter() - start)
            steps = data.train.n_training_batches(cfg.batch_size, captions_per_clip=cfg.captions_per_clip)
            med = statistics.median(times[1:]) if len(times) > 1 else times[0]
            print(f"{name:22s} threads {threads}: step {1000 * med:7.1f} ms (median of {len(times) - 1}), "
                  f"{steps} steps/epoch -> about {med * steps * cfg.epochs:5.1f} s of steps per run")
            if args.track:
                _scaled_to_benchmark(cfg, data, model, med, threads)
        if args.runs:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                res = train(cfg.replace(seed=0), tmp, data=data, progress=False)
                print(f"{name:22s} whole run ({cfg.epochs} epochs, threads {cfg.num_threads or 'default'}): "
                      f"{time.perf_counter() - start:.1f} s, test mAP@10 {res.test_metrics['t2a_mAP@10']:.2f}")
    return 0


def _scaled_to_benchmark(cfg, data, model, step_seconds: float, threads: int) -> None:
    """Print one epoch and one validation pass of ``cfg`` at the benchmark dataset's full size (estimates)."""
    from hybridlib.evaluation import evaluate_split
    from hybridlib.gpu_plan import DATASETS, steps_per_epoch

    full = DATASETS[cfg.benchmark]
    n_clips, n_captions = len(data.val.clip_ids), data.val.n_epoch_captions(None)
    start = time.perf_counter()
    evaluate_split(model.eval(), data.val, batch_size=cfg.eval_batch_size)
    val_seconds = time.perf_counter() - start
    model.train()
    steps = steps_per_epoch(cfg)
    val_full = val_seconds * 0.5 * (full.clips["val"] / n_clips + full.captions["val"] / max(n_captions, 1))
    epoch = steps * step_seconds + val_full
    print(f"{'':22s} threads {threads}: at {full.name}'s size (estimate): {steps} steps/epoch = "
          f"{steps * step_seconds:.0f} s + validation {val_full:.1f} s (measured {val_seconds:.2f} s on {n_clips} clips"
          f" / {n_captions} captions) = {epoch:.0f} s/epoch, {cfg.epochs} epochs + evaluation ~ "
          f"{(cfg.epochs * epoch + val_full) / 60:.1f} min per seed")


if __name__ == "__main__":
    raise SystemExit(main())
