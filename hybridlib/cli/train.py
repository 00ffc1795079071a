"""``hybridlib train``: train (and evaluate) a retrieval model from a config file, one or several seeds.

Under ``torchrun --nproc_per_node=N`` the N processes train each seed together (``batch_size`` stays the global
batch: :mod:`hybridlib.training.distributed`); rank 0 prepares the data while the others wait, and only rank 0
prints and writes. ``--workers`` (seeds in parallel processes) is refused there.

The run folder is locked while it is written (a second ``train`` or ``evaluate`` into it is refused in one line),
and a seed folder that already holds a run is not trained from scratch unless ``--overwrite`` says so
(:func:`hybridlib.runs.check_new_run`); ``--resume`` continues it."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from hybridlib.cli.audio_options import add_audio_arguments

MAIN_KEYS = ("t2a_mAP@10", "t2a_R@1", "t2a_R@10", "a2t_R@1")


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="YAML config (see experiments/)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/train/<config name>)")
    parser.add_argument("--seed", type=int, action="append", default=None,
                        help="seed to train (repeatable); default: the config's seeds")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set epochs=3 --set model.fusion=mid")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoints")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the runs already in --out (default: a seed folder holding a run is refused)")
    parser.add_argument("--smoke", action="store_true", help="use the tiny smoke teaching set")
    parser.add_argument("--workers", type=int, default=1,
                        help="train seeds in parallel worker processes (CPU configs; 0: one per core; not under torchrun)")
    add_audio_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    from hybridlib import paths
    from hybridlib.config import load_config
    from hybridlib.experiments import train_seeds
    from hybridlib.features.prepare import data_report_line
    from hybridlib.runs import check_new_run, format_aggregate, metrics_path
    from hybridlib.training import distributed
    from hybridlib.training.data import training_data
    from hybridlib.training.preflight import preflight
    from hybridlib.util.errors import UserError
    from hybridlib.util.files import DiskFull
    from hybridlib.util.locks import folder_lock
    from hybridlib.util.values import SEED_RULE, value_problem

    processes = distributed.world_size()
    if processes > 1 and args.workers != 1:
        raise UserError(f"--workers {args.workers} trains seeds in parallel processes, but under torchrun the "
                        f"{processes} processes already train each seed together: leave --workers out")
    flags = {"smoke": True} if args.smoke else {}
    flags.update({k: v for k, v in (("audio_check", args.audio_check), ("bad_audio", args.bad_audio)) if v})
    cfg = load_config(args.config, overrides=args.overrides, **flags)
    preflight(cfg, args.config)  # model section, device and datasets, before any download or worker
    out = Path(args.out) if args.out else paths.runs_dir() / "train" / cfg.name
    seeds = cfg.seeds if args.seed is None else args.seed
    for seed in args.seed or ():  # before any folder or data: seed-<2**70>/ must not be left behind
        problem = value_problem(seed, "int", **SEED_RULE)
        if problem:
            raise UserError(f"--seed {seed} {problem}")
    with ExitStack() as lock:
        distributed.init_from_env(cfg.device)

        def claim() -> None:  # rank 0 (the writer) locks and checks; a refusal stops every rank
            lock.enter_context(folder_lock(out))
            check_new_run(out, cfg, seeds, resume=args.resume, overwrite=args.overwrite)

        distributed.from_rank0(claim)
        # once for every seed (under torchrun: rank 0 prepares, the others wait); bad clips reported here
        data = training_data(cfg, progress=not args.no_progress, keep=True)
        main = distributed.is_main_process()
        if main:
            print(data_report_line(data.info), flush=True)
        try:
            summary = train_seeds(cfg, out, seeds=seeds, data=data, resume=args.resume,
                                  progress=not args.no_progress, workers=None if args.workers == 0 else args.workers)
        except DiskFull as exc:
            raise DiskFull(f"{exc} with --resume (it continues from the last complete epoch)") from None
    if not main:
        return 0
    if not summary:
        print(f"[train] stopped early (stop_after_epoch={cfg.stop_after_epoch}); continue with --resume")
        return 0
    shown = format_aggregate(summary["aggregate"], MAIN_KEYS)
    print(f"[train] {cfg.name}: {shown} over seeds {summary['seeds_run']} -> "
          f"{metrics_path(out, summary['split'])}")
    return 0
