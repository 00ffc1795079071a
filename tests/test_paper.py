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
