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


def run(args) -> int:
    from hybridlib.reproduce import make_rehearsal

    start = time.perf_counter()
    manifest = make_rehearsal(Path(args.out), shared=args.shared, realistic_lengths=args.realistic_lengths,
                              seed=args.seed)
    counts: dict[str, int] = {}
    for clip in manifest["clips"]:
        counts[clip["dataset"]] = counts.get(clip["dataset"], 0) + 1
    print(f"rehearsal written to {args.out} in {time.perf_counter() - start:.1f} s: "
          + ", ".join(f"{k} {v} clips" for k, v in counts.items())
          + f"; stand-ins: {', '.join([*manifest['weights'], *manifest['text_models']])} (random weights)")
    print(f"run a table on it: python -m hybridlib reproduce hybrid-table-1 --rehearsal {args.out} --seeds 0")
    return 0
