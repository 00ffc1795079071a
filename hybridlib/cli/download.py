"""``hybridlib download``: Clotho v2.1 (md5-checked, resumable), AudioCaps instructions, official model weights.

``python -m hybridlib download clotho [--root DIR] [--splits development validation evaluation] [--keep-archives]``
``python -m hybridlib download clotho --csv-only``   only the caption and metadata CSVs (a few MB)
``python -m hybridlib download audiocaps``   prints how to obtain AudioCaps audio (not redistributable)
``python -m hybridlib download weights NAME [--dest DIR]``   official checkpoints of the audio encoders
``--mirror URL`` (or ``HYBRIDLIB_MIRROR=URL``): fetch the files from a base URL serving them under their official
names instead of Zenodo / GitHub; each is still checked against the official md5.
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
    parser.add_argument("--csv-only", action="store_true",
                        help="clotho: only the caption and metadata CSVs (a few MB, md5-checked), no audio")
    parser.add_argument("--mirror", default=None, metavar="URL",
                        help="base URL (http://, https:// or file://) serving the files under their official names "
                             "(default: $HYBRIDLIB_MIRROR, else the official hosts); checked against the official md5")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from hybridlib.data.download import AUDIOCAPS_HELP, clotho_csv_dir, download_clotho
    from hybridlib.util.errors import UserError
    from hybridlib.util.fetch import mirror_base

    if args.what != "weights" and getattr(args, "name", None):
        raise UserError(f"download {args.what} takes no NAME (got {args.name!r}); NAME is for `download weights`")
    if args.what == "audiocaps":
        print(AUDIOCAPS_HELP)
        return 0
    mirror = mirror_base(getattr(args, "mirror", None))  # a bad value stops here, before any download
    if args.what == "clotho":
        csv_only = getattr(args, "csv_only", False)
        root = download_clotho(args.root, args.splits, args.keep_archives, progress=not args.no_progress,
                               csv_only=csv_only, mirror=mirror)
        if csv_only:
            print(f"Clotho v2.1 caption and metadata tables ready in {clotho_csv_dir(root)} (no audio: "
                  "run the command without --csv-only for the audio archives)")
        else:
            print(f"Clotho v2.1 ready below {root / 'CLOTHO_v2.1'}")
        return 0
    if not args.name:
        from hybridlib.models.audio.weights import WEIGHTS

        raise UserError(f"download weights needs a NAME, one of {', '.join(sorted(WEIGHTS))}")
    from hybridlib.models.audio import fetch_weights

    print(f"weights saved to {fetch_weights(args.name, args.dest, progress=not args.no_progress, mirror=mirror)}")
    return 0
