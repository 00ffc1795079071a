"""``hybridlib download``: Clotho v2.1 (md5-checked, resumable), AudioCaps instructions, official model weights.

``python -m hybridlib download clotho [--root DIR] [--splits development validation evaluation] [--keep-archives]``
``python -m hybridlib download audiocaps``   prints how to obtain AudioCaps audio (not redistributable)
``python -m hybridlib download weights NAME [--dest DIR]``   official checkpoints of the audio encoders
"""

from __future__ import annotations

from hybridlib.data.splits import DATASET_SPLITS


def add_arguments(parser) -> None:
    from hybridlib.models.audio.weights import WEIGHTS

    parser.add_argument("what", choices=["clotho", "audiocaps", "weights"], help="what to download")
    parser.add_argument("name", nargs="?", choices=sorted(WEIGHTS), metavar="NAME",
                        help=f"weights: one of {', '.join(sorted(WEIGHTS))}")
    parser.add_argument("--root", default=None, help="dataset root (default: hybridlib.paths.data_dir())")
    parser.add_argument("--dest", default=None, help="weights: destination folder (default <data>/weights)")
    parser.add_argument("--splits", nargs="+", default=list(DATASET_SPLITS["clotho"]),
                        choices=list(DATASET_SPLITS["clotho"]))
    parser.add_argument("--keep-archives", action="store_true", help="keep the .7z files after extraction")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from hybridlib.data.download import AUDIOCAPS_HELP, download_clotho

    if args.what == "audiocaps":
        print(AUDIOCAPS_HELP)
        return 0
    if args.what == "clotho":
        root = download_clotho(args.root, args.splits, args.keep_archives, progress=not args.no_progress)
        print(f"Clotho v2.1 ready below {root / 'CLOTHO_v2.1'}")
        return 0
    if not args.name:
        from hybridlib.models.audio.weights import WEIGHTS

        print(f"error: download weights needs a NAME, one of {', '.join(sorted(WEIGHTS))}")
        return 2
    from hybridlib.models.audio import fetch_weights

    print(f"weights saved to {fetch_weights(args.name, args.dest, progress=not args.no_progress)}")
    return 0
