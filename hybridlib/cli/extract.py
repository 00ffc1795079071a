"""``hybridlib extract``: fill the feature cache for a dataset and a frozen backbone (and text encoder).

Audio is screened first (``--audio-check``, default full): clips whose audio is missing or unusable are left
out, named in one printed line and listed in ``extract_report-<data folder>.json`` beside the cached
features; ``--bad-audio error`` stops instead, naming them all.
"""

from __future__ import annotations

from pathlib import Path

from hybridlib.cli.audio_options import add_audio_arguments
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
    parser.add_argument("--max-batch-seconds", type=float, default=None,
                        help="padded audio per batch (default 30 x batch size): bounds peak memory")
    parser.add_argument("--chunk-seconds", type=float, default=None,
                        help="clips longer than this are encoded alone, piece by piece (default 60)")
    parser.add_argument("--cache", default=None, help="cache root (default: hybridlib.paths.cache_dir())")
    parser.add_argument("--text-encoder", default="minilm",
                        help="also embed captions and metadata with this encoder ('none' to skip)")
    parser.add_argument("--smoke", action="store_true", help="use the smoke teaching set when --data is not given")
    parser.add_argument("--device", default="cpu")
    add_audio_arguments(parser, defaults_from_config=False)
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import json

    from hybridlib.data.audio_io import BadAudioError, describe_bad_audio, screen_audio
    from hybridlib.data.loaders import keep_missing_audio, load_split
    from hybridlib.features.cache import FeatureCache, fill_cache
    from hybridlib.models.audio import BACKBONES, available_backbones, build_audio_backbone
    from hybridlib.util.devices import resolve_device
    from hybridlib.util.errors import UserError
    from hybridlib.util.files import atomic_write_json

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
    cache = FeatureCache(args.cache)
    items, bad, reports = [], {}, {}
    for split in args.splits or dataset_splits(args.dataset):
        clips = load_split(args.dataset, root, split, **keep_missing_audio(args.dataset))
        kept = screen_audio(clips, check=args.audio_check or "full", progress=not args.no_progress,
                            where=f"{args.dataset}/{split}", memo_dir=cache.audio_check_dir)
        bad.update({f"{split}/{clip}": reason for clip, reason in kept.report.bad_audio.items()})
        reports[split] = kept.report.as_dict()
        items.extend(kept)
    if bad and args.bad_audio == "error":
        raise BadAudioError(describe_bad_audio(bad, str(root), limit=50) + " (--bad-audio error)")
    print(f"[extract] {len(items)} clips to encode; "
          + (f"excluded {describe_bad_audio(bad, limit=8)}" if bad else "no clip excluded"), flush=True)
    if not items:
        raise UserError(f"no clips with usable audio below {root} (the caption tables are there, the audio files "
                        "are not, or none passed the audio check: see `python -m hybridlib download clotho`)")
    backbone = build_audio_backbone(args.backbone, checkpoint=args.checkpoint).to(device)
    encoder = None
    if args.text_encoder and args.text_encoder.lower() != "none":
        from hybridlib.models.text import build_text_encoder

        encoder = build_text_encoder(args.text_encoder).to(device)
    r = fill_cache(items, backbone, encoder, cache, batch_size=args.batch_size, num_workers=args.workers,
                   progress=not args.no_progress, max_batch_seconds=args.max_batch_seconds,
                   chunk_seconds=args.chunk_seconds)
    report_path = Path(r["audio_dir"]) / f"extract_report-{root.name}.json"
    atomic_write_json(report_path, json.loads(json.dumps(
        {"data": str(root), "dataset": args.dataset, "audio_check": args.audio_check or "full",
         "excluded": bad, "load_reports": reports, "figures": r}, default=str)))
    rate = f", {r['audio_computed'] / r['audio_seconds']:.2f} clips/s" if r["audio_computed"] else ""
    damaged = f", {r['audio_damaged']} damaged entries recomputed" if r["audio_damaged"] else ""
    print(f"{args.backbone}: {r['clips']} clips ({r['audio_computed']} computed, {r['audio_cached']} cached{damaged}), "
          f"{r['frames']} frames of {backbone.embed_dim}-d in {r['audio_seconds']:.1f} s{rate} -> {r['audio_dir']}")
    if encoder is not None:
        print(f"{args.text_encoder}: {r['texts']} texts ({r['text_computed']} computed) in "
              f"{r['text_seconds']:.1f} s -> {r['text_dir']}")
    print(f"[extract] report -> {report_path}")
    return 0
