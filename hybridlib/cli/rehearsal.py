"""``hybridlib make-rehearsal``: miniature datasets from real audio in the official layouts, plus random-weight
stand-ins of the papers' architectures (see :mod:`hybridlib.reproduce` and :mod:`hybridlib.data.rehearsal`)."""

from __future__ import annotations

import time
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="rehearsal folder (its dataset folders are replaced)")
    parser.add_argument("--shared", default=None, help="shared reference data (default: hybridlib.paths.shared_data_dir())")
    parser.add_argument("--realistic-lengths", action="store_true",
                        help="tile clips to the datasets' durations (Clotho 15-30 s, AudioCaps/WavCaps 10 s), e.g. "
                             "for benchmarks/gpu_check.py")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--clotho-clips", type=int, nargs=3, default=None, metavar=("DEV", "VAL", "EVAL"),
                        help="clips per Clotho split (default 5 3 3), e.g. 96 32 32 with --realistic-lengths for "
                             "benchmarks at Clotho's clip lengths")


def run(args) -> int:
    from hybridlib.data.rehearsal import CLOTHO_SPLITS
    from hybridlib.reproduce import make_rehearsal
    from hybridlib.util.errors import UserError

    sizes = None
    if args.clotho_clips is not None:
        if min(args.clotho_clips) < 1:
            raise UserError(f"--clotho-clips must be positive numbers of clips (got {args.clotho_clips})")
        sizes = {"clotho": dict(zip(CLOTHO_SPLITS, args.clotho_clips))}
    start = time.perf_counter()
    manifest = make_rehearsal(Path(args.out), shared=args.shared, realistic_lengths=args.realistic_lengths,
                              seed=args.seed, sizes=sizes)
    counts: dict[str, int] = {}
    for clip in manifest["clips"]:
        counts[clip["dataset"]] = counts.get(clip["dataset"], 0) + 1
    print(f"rehearsal written to {args.out} in {time.perf_counter() - start:.1f} s: "
          + ", ".join(f"{k} {v} clips" for k, v in counts.items())
          + f"; stand-ins: {', '.join([*manifest['weights'], *manifest['text_models']])} (random weights)")
    print(f"run a table on it: python -m hybridlib reproduce hybrid-table-1 --rehearsal {args.out} --seeds 0")
    return 0
