"""The papers' numbers as data: internal consistency with the printed deltas and text, and comparisons."""

from __future__ import annotations

import io

import pytest

from hybridlib import paper


def test_table_i_deltas_match_printed_column():
    for row, base, delta in paper.HYBRID_TABLE_I_DELTAS:
        got = paper.paper_row(row)["t2a_mAP@10"] - paper.paper_row(base)["t2a_mAP@10"]
        assert got == pytest.approx(delta, abs=0.011), row


def test_text_numbers_consistent_with_table_i():
    r = paper.paper_row
    assert r("hybrid/clotho/both-baseline")["t2a_mAP@10"] - r("hybrid/clotho/baseline")["t2a_mAP@10"] == \
        pytest.approx(paper.HYBRID_TEXT["clotho/both-datasets/baseline-gain"], abs=0.011)
    assert r("hybrid/clotho/both-late")["t2a_mAP@10"] - r("hybrid/clotho/late-os")["t2a_mAP@10"] == \
        pytest.approx(paper.HYBRID_TEXT["clotho/both-datasets/hybrid-gain"], abs=0.011)
    assert paper.HYBRID_TEXT["clotho/late-os/shared-text-encoder/mAP@10"] == r("hybrid/clotho/late-os")["t2a_mAP@10"]


def test_row_ids_unique_and_values_are_percentages():
    ids = [r["row"] for r in paper.all_rows()]
    # Mei Table 2's bs32 rows repeat Table 1 under their own ids
    assert len(ids) == len(set(ids))
    for r in paper.all_rows():
        for k, v in r.items():
            if k.startswith(("t2a_", "a2t_")) and v is not None:
                assert 0 <= v <= 100, (r["row"], k)
    assert len(paper.HYBRID_TABLE_I) == 22 and len(paper.MEI_TABLE_1) == 16 and len(paper.MEI_TABLE_2) == 8


def test_mei_table2_bs32_repeats_table1():
    for row in paper.MEI_TABLE_2[:4]:
        t1 = paper.paper_row(row["row"].removesuffix("/bs32"))
        for k in ("t2a_R@1", "a2t_R@10"):
            assert row[k] == t1[k]
    assert paper.paper_row("mei/clotho/frozen/triplet-weighted")["lr"] == 5e-5
    assert paper.paper_row("mei/clotho/frozen/nt-xent")["lr"] == 1e-4
    assert paper.paper_row("mei/clotho/frozen/nt-xent")["batch_size"] == 24


def test_unknown_row_and_table_raise():
    with pytest.raises(KeyError, match="unknown paper row"):
        paper.paper_row("hybrid/clotho/nope")
    with pytest.raises(KeyError, match="unknown table"):
        paper.table("nope")
    assert len(paper.table("mei-2")) == 8


def test_compare_diff_in_points():
    ours = {"hybrid/clotho/baseline": {"t2a_mAP@10": {"mean": 20.0, "std": 1.0}, "t2a_R@1": 10.0}}
    df = paper.compare(ours)
    m = df.set_index("metric")
    assert m.loc["t2a_mAP@10", "diff"] == pytest.approx(20.0 - 26.8)
    assert m.loc["t2a_mAP@10", "ours_std"] == 1.0
    assert m.loc["t2a_R@1", "diff"] == pytest.approx(10.0 - 15.81)
    assert "t2a_R@5" not in set(df.metric)  # not in ours


def test_findings_direction_paper_and_ours():
    late_vs_base = next(f for f in paper.HYBRID_FINDINGS if f.key == "late>baseline")
    assert late_vs_base.paper_gap() == pytest.approx(2.36)
    holds = late_vs_base.check({"hybrid/clotho/late-os": {"t2a_mAP@10": 30.0},
                                "hybrid/clotho/baseline": {"t2a_mAP@10": 31.0}})
    assert holds["holds"] is False and holds["paper_holds"] is True and holds["our_gap"] == pytest.approx(-1.0)
    shared = next(f for f in paper.HYBRID_FINDINGS if f.key == "shared>separate")
    assert shared.paper_gap() == pytest.approx(29.16 - 28.05)
    # Mei: NT-Xent does not beat triplet-max on frozen AudioCaps in the paper itself ("in most cases")
    f = next(f for f in paper.MEI_FINDINGS if f.key == "nt-xent>=triplet-max/audiocaps/frozen")
    assert f.check({})["paper_holds"] is False
    # batch-size stability uses a tolerance: triplet-sum 17.0 vs 17.2 counts as stable
    f = next(f for f in paper.MEI_FINDINGS if f.key == "bs128~bs32/triplet-sum")
    assert f.check({})["paper_holds"] is True
    f = next(f for f in paper.MEI_FINDINGS if f.key == "bs32>bs128/triplet-max")
    assert f.paper_gap() == pytest.approx(19.9 - 11.8)


def test_side_by_side_prints_rows_and_findings():
    ours = {"hybrid/clotho/baseline": {"t2a_mAP@10": {"mean": 20.0, "std": 0.5}},
            "hybrid/clotho/late-os": {"t2a_mAP@10": {"mean": 22.5, "std": 0.5}}}
    buf = io.StringIO()
    text = paper.side_by_side(ours, metrics=("t2a_mAP@10",), file=buf)
    assert buf.getvalue().strip() == text.strip()
    assert "hybrid/clotho/late-os t2a_mAP@10" in text and "-6.66" in text
    assert "late fusion (OS tags) beats" in text and "+2.50" in text and "yes" in text
    df = paper.check_findings(ours)
    assert list(df.key) == ["late>baseline"]


def test_section_v_e_and_table_ii_findings():
    shared = next(f for f in paper.HYBRID_FINDINGS if f.key == "shared>separate")
    assert paper.paper_row(shared.better)["t2a_mAP@10"] == paper.paper_row("hybrid/clotho/late-os")["t2a_mAP@10"]
    assert paper.paper_row(shared.worse)["table"] == "text V-E"
    generated = next(f for f in paper.HYBRID_FINDINGS if f.key == "generated-captions:content>hybrid")
    assert generated.paper_gap() == pytest.approx(30.35 - 27.67) and generated.check({})["paper_holds"] is True
    ours = {generated.better: {"t2a_mAP@10": {"mean": 40.0, "std": 1.0}},
            generated.worse: {"t2a_mAP@10": {"mean": 42.0, "std": 2.0}}}
    got = generated.check(ours)
    assert got["holds"] is False and got["our_gap"] == pytest.approx(-2.0) and got["our_gap_std"] == pytest.approx(5 ** 0.5)
    cmp = paper.compare({shared.worse: {"t2a_mAP@10": 27.0}})
    assert cmp["paper"].tolist() == [28.05]


def test_gap_verdict_uses_the_t_interval_of_the_seeds():
    # 5 seeds, std 1.0: t(0.975, 4) = 2.776, half-width 1.24
    half, verdict = paper.gap_verdict(2.0, 1.0, 5)
    assert half == pytest.approx(2.776 * 1.0 / 5 ** 0.5, abs=1e-3) and verdict == "holds"
    assert paper.gap_verdict(1.0, 1.0, 5)[1] == "within noise"
    assert paper.gap_verdict(-2.0, 1.0, 5)[1] == "does not hold"
    assert paper.gap_verdict(1.0, 1.0, 3)[1] == "within noise"  # t(0.975, 2) = 4.30: wider with fewer seeds
    assert paper.gap_verdict(5.0, 0.0, 1) == (None, "one seed: no spread")
    # "at least as good, within a tolerance": -0.5 with a tight interval is inside a 1.5-point tolerance
    assert paper.gap_verdict(-0.5, 0.3, 5, tolerance=1.5)[1] == "holds"
    assert paper.gap_verdict(-3.0, 0.3, 5, tolerance=1.5)[1] == "does not hold"


def test_check_pairs_per_seed_values():
    late = next(f for f in paper.HYBRID_FINDINGS if f.key == "late>baseline")
    # the seeds move both models alike: unpaired the gap drowns in the spread, paired it is clear
    ours = {late.better: {"t2a_mAP@10": {"mean": 52.0, "std": 3.16, "values": [48.0, 50.0, 52.0, 54.0, 56.0]}},
            late.worse: {"t2a_mAP@10": {"mean": 50.0, "std": 3.16, "values": [46.5, 47.5, 50.0, 52.5, 53.5]}}}
    got = late.check(ours)
    diffs = [1.5, 2.5, 2.0, 1.5, 2.5]
    mean = sum(diffs) / 5
    std = (sum((d - mean) ** 2 for d in diffs) / 4) ** 0.5
    assert got["our_gap"] == pytest.approx(2.0) and got["our_gap_std"] == pytest.approx(std)
    assert got["n_seeds"] == 5 and got["verdict"] == "holds" and got["our_gap_ci95"] == pytest.approx(
        paper.gap_verdict(2.0, std, 5)[0])
    unpaired = late.check({k: {"t2a_mAP@10": {"mean": v["t2a_mAP@10"]["mean"], "std": 3.16, "n": 5}}
                           for k, v in ours.items()})
    assert unpaired["verdict"] == "within noise" and unpaired["our_gap_std"] == pytest.approx(3.16 * 2 ** 0.5)


def test_headline_findings_cover_seven_and_combine_parts():
    assert len(paper.HEADLINE_FINDINGS) == 7
    known = {f.key for f in paper.HYBRID_FINDINGS + paper.MEI_FINDINGS}
    assert all(set(h["keys"]) <= known for h in paper.HEADLINE_FINDINGS)
    assert {"shared>separate", "generated-captions:content>hybrid"} <= {k for h in paper.HEADLINE_FINDINGS
                                                                        for k in h["keys"]}

    def agg(*values):
        mean = sum(values) / len(values)
        return {"t2a_mAP@10": {"mean": mean, "values": list(values)}}

    ours = {"hybrid/clotho/late-os": agg(52, 53, 54), "hybrid/clotho/baseline": agg(46, 47, 48),
            "hybrid/clotho/mid-os": agg(52.5, 52.0, 55.0)}
    table = paper.headline_findings(paper.check_findings(ours, paper.HYBRID_FINDINGS)).set_index("finding")
    assert len(table) == 7
    first = table.loc["the hybrid model beats the content-only baseline"]
    assert first.verdict == "holds" and len(first.parts) == 2 and first.our_gap == "+6.00 ± 0.00; +6.17 ± 1.04"
    assert table.loc["late fusion is at least as good as mid-level fusion"].verdict == "within noise"
    assert table.loc["a shared text encoder beats separate ones"].verdict == "not run"
    assert paper.combine_verdicts(["holds", "within noise"]) == "within noise"
    assert paper.combine_verdicts(["holds", "does not hold"]) == "does not hold"
    assert paper.combine_verdicts(["one seed: no spread"] * 2) == "one seed: no spread"


def test_findings_plot_shows_the_paper_gap_and_our_verdict():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hybridlib.viz.training import plot_findings

    values = {"hybrid/clotho/late-os/shared-text-encoder": [50.0, 51.0, 52.5],
              "hybrid/clotho/late-os/separate-text-encoder": [50.5, 50.0, 52.0],
              "hybrid/wavcaps-fs/baseline": [40.0, 41.0, 42.0], "hybrid/wavcaps-fs/late-os": [44.0, 45.5, 46.0]}
    ours = {row: {"t2a_mAP@10": {"mean": sum(v) / 3, "values": v}} for row, v in values.items()}
    found = paper.check_findings(ours, paper.HYBRID_FINDINGS)
    assert list(found.key) == ["shared>separate", "generated-captions:content>hybrid"]
    fig, ax = plt.subplots()
    assert plot_findings(found, ax=ax) is fig
    labels = [" ".join(t.get_text().split()) for t in ax.get_yticklabels()]  # labels may be wrapped
    assert labels[0].endswith(": within noise") and labels[1].endswith(": does not hold")
    paper_bars = sorted(p.get_width() for p in ax.containers[0])  # the paper's gaps, from hybridlib.paper
    assert paper_bars == pytest.approx(sorted([29.16 - 28.05, 30.35 - 27.67]))
    plt.close(fig)
