"""``hybridlib search``: the top-k clips of a trained run for typed queries, printed as a table.

The same ranking as notebook 08's search box (:mod:`hybridlib.search`): rank (pessimistic ties, as the metrics
count), score and its parts (mid fusion: the query's weighted audio and metadata scores; late fusion: the
audio, metadata and bias parts of the fused item vector), clip, keywords and first caption.
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("queries", nargs="+", metavar="QUERY", help="what you want to hear (quote it)")
    parser.add_argument("--run", required=True, help="run folder written by `train` (a seed folder or seed-*/)")
    parser.add_argument("--seed", type=int, default=None, help="which seed-<n>/ of the run (default: the lowest)")
    parser.add_argument("--split", default=None, help="collection searched (default: the run's evaluation split)")
    parser.add_argument("-k", "--top", type=int, default=10, help="how many clips to list (default 10)")
    parser.add_argument("--audio-alone", action="store_true",
                        help="hide metadata: rank by the audio alone (see hybridlib.search)")
    parser.add_argument("--device", default="cpu", help="device that embeds the collection (default cpu)")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from hybridlib.search import Searcher
    from hybridlib.util.devices import resolve_device
    from hybridlib.util.errors import UserError

    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    if not all(q.strip() for q in args.queries):
        raise UserError("a query is empty: type what you want to hear")
    searcher = Searcher.from_run(args.run, seed=args.seed, split=args.split, device=resolve_device(args.device),
                                 progress=not args.no_progress)
    cached = "read from the cache" if searcher.info["cache_hit"] else "embedded and cached"
    print(f"[search] {searcher.info['seed_dir']}: {len(searcher.items)} clips of {searcher.split}, {cached} "
          f"({searcher.info['cache']})")
    if args.audio_alone:
        print(f"[search] audio alone: {searcher.audio_alone_meaning}")
    for query in args.queries:
        print()
        print(searcher.search(query, k=args.top, audio_alone=args.audio_alone).to_text())
    return 0
