"""``hybridlib reproduce TABLE``: train every row and seed of a paper table, then compare with the paper."""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    from hybridlib.reproduce import ALL, TABLES

    parser.add_argument("table", choices=[*TABLES, ALL], help="which table (all: every paper config)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: each config's)")
    parser.add_argument("--out", default=None, help="runs folder (default: runs/reproduce)")
    parser.add_argument("--rows", nargs="+", default=None, help="only these rows (paper row ids or config names)")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="every N-th row starting at the I-th: split a table across N machines")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field of every row, e.g. --set device=cuda:1")
    parser.add_argument("--rehearsal", default=None, metavar="DIR",
                        help="run on a rehearsal folder (python -m hybridlib make-rehearsal) with the CPU overrides "
                             "of hybridlib.reproduce.REHEARSAL_OVERRIDES; its numbers are labelled as random-weight "
                             "stand-ins and its overrides reported as known deviations from the paper")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep checkpoint.pt of finished seeds (default: deleted; best/ and metrics stay)")
    parser.add_argument("--report", action="store_true", help="train nothing: collect and compare what is there")
    parser.add_argument("--list", action="store_true", help="list the rows and their configs, then stop")
    parser.add_argument("--plan", action="store_true",
                        help="print the table's reproduction plan (Markdown: command data, epochs, estimated GPU "
                             "hours and memory, where metrics land; see hybridlib.gpu_plan), then stop")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from hybridlib.reproduce import reproduce, select_entries, table_entries

    if args.plan:
        from hybridlib.gpu_plan import plan_totals_line, reproduction_table_markdown
        from hybridlib.reproduce import TABLES

        print(reproduction_table_markdown(args.table), end="")
        if "config_dir" not in TABLES.get(args.table, {}):  # a GPU table: what all its rows cost together
            print("\n" + plan_totals_line(args.table))
        return 0
    if args.list:
        for e in select_entries(table_entries(args.table), args.rows, args.shard):
            print(f"{e.row:<44} {e.config}")
        return 0
    result = reproduce(args.table, seeds=args.seeds, out=Path(args.out) if args.out else None, rows=args.rows,
                       shard=args.shard, overrides=args.overrides, rehearsal=args.rehearsal,
                       keep_checkpoints=args.keep_checkpoints, report_only=args.report,
                       progress=not args.no_progress)
    for status in result["rows"]:
        seeds = ", ".join(f"{s}: {v}" for s, v in status.seeds.items())
        print(f"[reproduce] {status.name}: {seeds}")
    if not result["text"]:
        print("[reproduce] no finished rows to compare yet")
    print("[reproduce] comparison: " + ", ".join(str(f) for f in result["files"]))
    return 0
