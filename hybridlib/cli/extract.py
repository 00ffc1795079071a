"""``hybridlib extract``: fill the feature cache for a dataset and a frozen backbone (and text encoder)."""

from __future__ import annotations

import sys
from pathlib import Path

from hybridlib.data.splits import DATASET_SPLITS, dataset_splits


def add_arguments(parser) -> None:
    parser.add_argument("--data", default=None, help="dataset root (default: the teaching set, generated if missing)")
    parser.add_argument("--dataset", choices=sorted(set(DATASET_SPLITS) - {"teaching"}), default="clotho",
                        help="layout of --data")
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
    import torch

    from hybridlib.data.loaders import load_split
    from hybridlib.features.cache import FeatureCache, fill_cache
    from hybridlib.models.audio import build_audio_backbone

    if args.data is None:
        from hybridlib.data import ensure_teaching_set

        root = ensure_teaching_set(smoke=args.smoke, progress=not args.no_progress)
    else:
        root = Path(args.data)
    items = []
    for split in args.splits or dataset_splits(args.dataset):
        clips = load_split(args.dataset, root, split)
        with_audio = [it for it in clips if it.audio_path is not None]
        if len(with_audio) < len(clips):
            print(f"{split}: {len(clips) - len(with_audio)} clips without audio skipped", file=sys.stderr)
        items.extend(with_audio)
    if not items:
        print(f"error: no clips with audio below {root}", file=sys.stderr)
        return 2
    device = torch.device(args.device)
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
