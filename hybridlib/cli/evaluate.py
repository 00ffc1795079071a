"""``hybridlib evaluate``: score a trained run's best models on a split; each split has its own metrics file."""

from __future__ import annotations

from pathlib import Path

from hybridlib.cli.audio_options import add_audio_arguments

MAIN_KEYS = ("t2a_mAP@10", "t2a_R@1", "t2a_R@5", "t2a_R@10", "a2t_R@1", "a2t_R@5", "a2t_R@10")


def add_arguments(parser) -> None:
    parser.add_argument("--run", required=True, help="run folder written by `train` (a seed folder or seed-*/)")
    parser.add_argument("--split", default=None, help="split to evaluate (default: the config's eval_split)")
    parser.add_argument("--device", default="auto")
    add_audio_arguments(parser)
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from hybridlib import runs
    from hybridlib.evaluation import evaluate_split
    from hybridlib.features.prepare import data_report_line, prepare_data
    from hybridlib.util.devices import resolve_device
    from hybridlib.util.errors import UserError
    from hybridlib.util.locks import folder_lock

    device = resolve_device(args.device)
    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise UserError(f"--run {run_dir}: no such folder (give the --out folder of `python -m hybridlib train`)")
    dirs = runs.seed_dirs(run_dir) or ([run_dir] if (run_dir / runs.BEST).is_dir() else [])
    if not dirs:
        raise UserError(f"{run_dir} holds no trained seed (seed-*/best/): give the --out folder of "
                        "`python -m hybridlib train` after a finished run")
    with folder_lock(run_dir):  # a training or another evaluation writing this run folder is refused
        data, cfg = None, None
        for d in dirs:
            with folder_lock(d):  # training into this seed folder meanwhile would be refused, and vice versa
                model, cfg = runs.load_trained(d, device)
                changes = {k: v for k, v in (("eval_split", args.split), ("audio_check", args.audio_check),
                                             ("bad_audio", args.bad_audio)) if v}
                if changes:
                    cfg = cfg.replace(**changes)
                if data is None:  # every seed of a run shares its data; only the scored split is encoded
                    data = prepare_data(cfg, progress=not args.no_progress, roles=("test",))
                    print(data_report_line(data.info), flush=True)
                    runs.write_data_report(run_dir, data.info, split=data.test.name)
                result = evaluate_split(model, data.test, batch_size=cfg.eval_batch_size, device=device)
                runs.write_seed_metrics(d, cfg, result, data.test.name)
                print(f"[evaluate] {d.name}: " + ", ".join(f"{k} {result[k]:.2f}" for k in MAIN_KEYS if k in result))
        if dirs[0] != run_dir:
            summary = runs.write_run_metrics(run_dir, data.test.name, cfg=cfg)
            print("[evaluate] mean ± std over seeds: " + runs.format_aggregate(summary["aggregate"], MAIN_KEYS))
        print(f"[evaluate] -> {runs.metrics_path(run_dir, data.test.name)}")
    return 0
