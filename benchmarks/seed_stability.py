"""How many seeds do the teaching-set spreads need? Trains configs for many seeds and prints, for n = 2..N,
the mean, the sample std and the 95% confidence half-width of the mean of each config and of the paired gap
hybrid - baseline, so one can read off where the numbers stop moving.

    .venv/bin/python benchmarks/seed_stability.py --seeds 10 [--configs baseline hybrid-late] [--workers 2]

Prints figures only (asserts nothing). Uses the full teaching set (generated and cached on first use).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

T95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26, 12: 2.20, 15: 2.14, 20: 2.09}


def t95(n: int) -> float:
    return T95.get(n) or T95[max(k for k in T95 if k <= n)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--configs", nargs="+", default=["baseline", "hybrid-late"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)

    from hybridlib.config import teaching_config
    from hybridlib.experiments import train_many

    seeds = list(range(args.seeds))
    cfgs = [teaching_config(name, smoke=args.smoke, tensorboard=False) for name in args.configs]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        summaries = train_many([(c, f"{tmp}/{c.name}") for c in cfgs], seeds=seeds, workers=args.workers,
                               progress=True)
    print(f"{len(cfgs)} configs x {len(seeds)} seeds in {time.perf_counter() - start:.0f} s")
    values = {c.name: [s["seeds"][str(k)]["t2a_mAP@10"] for k in seeds] for c, s in zip(cfgs, summaries)}
    for name, v in values.items():
        print(f"{name}: " + ", ".join(f"{x:.2f}" for x in v))
    if len(cfgs) >= 2:
        a, b = cfgs[-1].name, cfgs[0].name
        values[f"{a} - {b}"] = [x - y for x, y in zip(values[a], values[b])]
    print(f"\n{'n':>3} " + " ".join(f"{k:>32}" for k in values))
    for n in range(2, len(seeds) + 1):
        cells = []
        for v in values.values():
            mean, std = statistics.mean(v[:n]), statistics.stdev(v[:n])
            cells.append(f"{mean:7.2f} ± {std:5.2f} (CI ±{t95(n) * std / math.sqrt(n):5.2f})")
        print(f"{n:>3} " + " ".join(f"{c:>32}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
