"""``hybridlib make-teaching-set``: generate the teaching set (see :mod:`hybridlib.data.teaching`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hybridlib.cli.audio_options import add_audio_arguments
from hybridlib.data.teaching import FULL_CLIPS, SMOKE_CLIPS


def add_arguments(parser) -> None:
    parser.add_argument("--out", default=None, help="output folder (default: hybridlib.paths.teaching_dir())")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clips", type=int, nargs=3, metavar=("DEV", "VAL", "EVAL"), default=None,
                        help=f"clips per split (default {FULL_CLIPS}; --smoke: {SMOKE_CLIPS})")
    parser.add_argument("--smoke", action="store_true", help="tiny set for quick checks")
    parser.add_argument("--bank", default="procedural", help="'procedural' or a folder with manifest.csv")
    parser.add_argument("--force", action="store_true", help="replace a teaching set already in the output folder (a folder holding none is never replaced)")
    add_audio_arguments(parser, defaults_from_config=False, check=False)  # bank files: always a full check
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from hybridlib.data.teaching import make_teaching_set
    from hybridlib.paths import teaching_dir

    out = Path(args.out) if args.out else teaching_dir(args.smoke)
    clips = tuple(args.clips) if args.clips else (SMOKE_CLIPS if args.smoke else FULL_CLIPS)
    start = time.perf_counter()
    make_teaching_set(out, seed=args.seed, n_clips=clips, bank=args.bank, progress=not args.no_progress,
                      overwrite=args.force, bad_audio=args.bad_audio or "exclude")
    excluded = json.loads((out / "teaching.json").read_text(encoding="utf-8")).get("bank_excluded", {})
    if excluded:
        from hybridlib.data.audio_io import describe_bad_audio

        print(f"[make-teaching-set] bank: excluded {describe_bad_audio(excluded, limit=8)} "
              f"(all listed in {out / 'teaching.json'}, bank_excluded)")
    print(f"teaching set ({'/'.join(map(str, clips))} clips, seed {args.seed}, bank {args.bank}) written to "
          f"{out} in {time.perf_counter() - start:.1f} s")
    return 0
