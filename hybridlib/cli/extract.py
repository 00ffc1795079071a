"""``hybridlib extract``: fill the feature cache for a dataset and a frozen backbone (and text encoder)."""

from __future__ import annotations

import sys
from pathlib import Path

from hybridlib.data.splits import DATASET_SPLITS


def add_arguments(parser) -> None:
    parser.add_argument("--data", default=None, help="dataset root (default: the teaching set, generated if missing)")
    parser.add_argument("--dataset", choices=["clotho", "audiocaps"], default="clotho", help="layout of --data")
    parser.add_argument("--backbone", default="sfx-cnn", help="audio backbone name (default sfx-cnn)")
    parser.add_argument("--checkpoint", default=None, help="official weights file for the backbone")
    parser.add_argument("--splits", nargs="+", default=None, help="splits (default: all of the dataset)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="audio decoding threads")
    parser.add_argument("--cache", default=None, help="cache root (default: hybridlib.paths.cache_dir())")
    parser.add_argument("--text-encoder", default="minilm",
                        help="also embed captions and metadata with this encoder ('none' to skip)")
    parser.add_argument("--smoke", action="store_true", help="use the smoke teaching set when --data is not given")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from hybridlib.data.loaders import load_split
    from hybridlib.features.cache import FeatureCache, fill_cache
    from hybridlib.models.audio import BACKBONES, available_backbones, build_audio_backbone
    from hybridlib.util.devices import resolve_device
    from hybridlib.util.errors import UserError

    device = resolve_device(args.device)  # inputs first: device, backbone, data folder, splits; then work
    if args.backbone not in BACKBONES:
        raise UserError(f"unknown audio backbone {args.backbone!r}; choose from {available_backbones()}")
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise UserError(f"--checkpoint {args.checkpoint}: no such file")
    if args.batch_size < 1 or args.workers < 1:
        raise UserError(f"--batch-size and --workers must be at least 1 (got {args.batch_size}, {args.workers})")
    if args.data is not None and not Path(args.data).is_dir():
        raise UserError(f"--data {args.data}: no such folder (give the dataset root, e.g. data/ after "
                        "`python -m hybridlib download clotho`, or leave --data out for the teaching set)")
    if args.splits:
        from hybridlib.data.splits import normalize_split

        args.splits = [normalize_split(args.dataset, s) for s in args.splits]
    if args.data is None:
        from hybridlib.data import ensure_teaching_set

        root = ensure_teaching_set(smoke=args.smoke, progress=not args.no_progress)
    else:
        root = Path(args.data)
    items = []
    for split in args.splits or DATASET_SPLITS[args.dataset]:
        clips = load_split(args.dataset, root, split)
        with_audio = [it for it in clips if it.audio_path is not None]
        if len(with_audio) < len(clips):
            print(f"{split}: {len(clips) - len(with_audio)} clips without audio skipped", file=sys.stderr)
        items.extend(with_audio)
    if not items:
        raise UserError(f"no clips with audio below {root} (the caption tables are there, the audio files are "
                        "not: see `python -m hybridlib download clotho`)")
    backbone = build_audio_backbone(args.backbone, checkpoint=args.checkpoint).to(device)
    encoder = None
    if args.text_encoder and args.text_encoder.lower() != "none":
        from hybridlib.models.text import build_text_encoder

        encoder = build_text_encoder(args.text_encoder).to(device)
    r = fill_cache(items, backbone, encoder, FeatureCache(args.cache), batch_size=args.batch_size,
                   num_workers=args.workers, progress=not args.no_progress)
    rate = f", {r['audio_computed'] / r['audio_seconds']:.2f} clips/s" if r["audio_computed"] else ""
    print(f"{args.backbone}: {r['clips']} clips ({r['audio_computed']} computed, {r['audio_cached']} cached), "
          f"{r['frames']} frames of {backbone.embed_dim}-d in {r['audio_seconds']:.1f} s{rate} -> {r['audio_dir']}")
    if encoder is not None:
        print(f"{args.text_encoder}: {r['texts']} texts ({r['text_computed']} computed) in "
              f"{r['text_seconds']:.1f} s -> {r['text_dir']}")
    return 0
