"""Search (hybridlib.search): ranks as the metrics count them, score parts that add up, audio alone per fusion,
the on-disk index cache, agreement with evaluation, the widget and the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from hybridlib import metrics, runs
from hybridlib.config import teaching_config
from hybridlib.features.splits import EncodedSplit
from hybridlib.models.config import ModelConfig
from hybridlib.models.fusion import l2_normalize
from hybridlib.models.retrieval import RetrievalModel
from hybridlib.search import (
    ItemIndex,
    Searcher,
    agreement_with_evaluation,
    build_index,
    index_path,
    load_index,
    rank_items,
    save_index,
    score_parts,
)
from hybridlib.util.errors import UserError

DA, DT, R = 12, 16, 8


# ------------------------------------------------------------------------------------------------ ranking
def _metric_ranks(scores: torch.Tensor) -> torch.Tensor:
    """Each item's rank as hybridlib.metrics gives it when that item is the one relevant candidate."""
    a = scores.numel()
    return metrics.relevant_ranks(scores.expand(a, a).contiguous(), torch.arange(a)[:, None],
                                  torch.ones(a, 1, dtype=torch.bool))[:, 0].long()


@pytest.mark.parametrize("seed", range(5))
def test_ranks_equal_the_metrics_ranks_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 6, (40,), generator=g).float() / 5  # many ties
    order, ranks = rank_items(scores)
    assert torch.equal(ranks, _metric_ranks(scores))
    listed = scores[order]
    assert bool((listed[:-1] >= listed[1:]).all())  # descending
    for value in scores.unique():  # ties in collection order
        tied = order[scores[order] == value]
        assert tied.tolist() == sorted(tied.tolist())
    # ranks along the listed order never decrease, and a tie group shares its worst position
    assert bool((ranks[order][:-1] <= ranks[order][1:]).all())
    for value in scores.unique():
        group = (scores == value).nonzero().flatten()
        assert set(ranks[group].tolist()) == {int(max((order == i).nonzero().item() for i in group)) + 1}


def test_ranks_give_the_metrics_recall_and_map():
    g = torch.Generator().manual_seed(3)
    sim = torch.randint(0, 4, (30, 12), generator=g).float()
    target = torch.randint(0, 12, (30,), generator=g)
    ranks = torch.stack([rank_items(row)[1][t] for row, t in zip(sim, target)])
    expected = metrics.text_to_audio(sim, target)
    assert expected["R@1"] == pytest.approx(100 * (ranks <= 1).float().mean().item())
    assert expected["R@10"] == pytest.approx(100 * (ranks <= 10).float().mean().item())
    ap = torch.where(ranks <= 10, 1.0 / ranks.double(), torch.zeros(30, dtype=torch.float64))
    assert expected["mAP@10"] == pytest.approx(100 * ap.mean().item())


def test_constant_scores_put_every_item_last_and_nan_is_refused():
    order, ranks = rank_items(torch.zeros(7))
    assert order.tolist() == list(range(7)) and ranks.tolist() == [7] * 7
    with pytest.raises(ValueError, match="NaN"):
        rank_items(torch.tensor([0.1, float("nan")]))
    with pytest.raises(ValueError, match="1-D"):
        rank_items(torch.zeros(2, 2))


# ------------------------------------------------------------------------------------------------ parts
def _model(fusion: str, **kw) -> RetrievalModel:
    torch.manual_seed(0)
    cfg = ModelConfig(fusion=fusion, audio_dim=DA, text_dim=DT, retrieval_dim=R, num_layers=1, num_heads=2,
                      dropout=0.0, **kw)
    return RetrievalModel(cfg).eval()


def _split(n: int = 9) -> EncodedSplit:
    g = torch.Generator().manual_seed(5)
    has = torch.ones(n, dtype=torch.bool)
    has[2] = False
    return EncodedSplit(
        name="s", clip_ids=[f"c{i}" for i in range(n)], captions=[f"cap {i}" for i in range(2 * n)],
        caption_clip=torch.arange(n).repeat_interleave(2), metadata_text=[None if i == 2 else "kw" for i in range(n)],
        has_metadata=has, frames=[torch.randn(4 + i % 3, DA, generator=g) for i in range(n)],
        metadata_emb=torch.randn(n, DT, generator=g) * has[:, None], caption_emb=torch.randn(2 * n, DT, generator=g))


FUSIONS = [("late", "learned"), ("late", "audio-only"), ("mid", "learned"), ("mid", "audio-only"),
           ("none", "learned"), ("mei", "learned"), ("metadata-only", "learned")]


@pytest.mark.parametrize("fusion,missing", FUSIONS)
def test_score_parts_add_up_to_the_score(fusion, missing):
    model, split = _model(fusion, missing_metadata=missing), _split()
    index = build_index(model, split)
    queries = model.embed_queries(split.query_batch(range(split.n_captions)))
    for items, parts in ((index.items, index.parts), (index.audio_alone, index.audio_alone_parts)):
        if items is None:
            continue
        with torch.no_grad():
            got = score_parts(model, queries, items, parts)
            score = model.similarity(queries, items)
        assert got, "every fusion with a linear projection splits its score"
        torch.testing.assert_close(sum(got.values()), score, atol=1e-5, rtol=0)
    expected = {"late": {"audio", "metadata", "bias"}, "mid": {"audio", "metadata"}, "none": {"audio"},
                "mei": {"audio"}, "metadata-only": {"metadata"}}[fusion]
    assert set(got) == expected


def test_late_item_parts_are_exact_and_only_for_a_linear_projection():
    model, split = _model("late"), _split()
    batch = split.item_batch(range(split.n_clips))
    with torch.no_grad():
        parts, items = model.item_parts(batch), model.embed_items(batch)
    torch.testing.assert_close(parts["audio"] + parts["metadata"] + parts["bias"], items.embedding, atol=1e-6, rtol=0)
    assert _model("late", projection="mlp").item_parts(batch) is None
    assert _model("mid").item_parts(batch) is None


def test_audio_alone_is_the_models_missing_metadata_path():
    split = _split()
    bare = split.without_metadata()
    assert not bare.has_metadata.any() and bare.metadata_text == [None] * split.n_clips
    assert split.has_metadata.sum() == split.n_clips - 1  # the original is untouched
    # late, audio-only policy: the metadata term is dropped, the item vector is the projected audio
    model = _model("late", missing_metadata="audio-only")
    with torch.no_grad():
        index = build_index(model, split)
        _, stages = model.embed_items(bare.item_batch(range(split.n_clips)), return_stages=True)
        torch.testing.assert_close(index.audio_alone.embedding, l2_normalize(model.item_proj(stages["audio"])))
    # mid, audio-only policy: the score is the audio cosine alone
    model = _model("mid", missing_metadata="audio-only")
    with torch.no_grad():
        index = build_index(model, split)
        queries = model.embed_queries(split.query_batch(range(4)))
        torch.testing.assert_close(model.similarity(queries, index.audio_alone),
                                   queries.embedding @ index.audio_alone.embedding.T)
    # content-only and metadata-only models have no audio-alone variant to store
    assert build_index(_model("none"), split).audio_alone is None


def test_index_round_trip_and_stale_files_are_recomputed(tmp_path):
    model, split = _model("mid"), _split()
    index = build_index(model, split)
    path = index_path(tmp_path, "abc", "fp", "s")
    save_index(index, path, {"note": "test"})
    back = load_index(path, split.clip_ids)
    assert isinstance(back, ItemIndex)
    a, b = index.to_tensors(), back.to_tensors()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load_index(path, split.clip_ids[::-1]) is None  # other clips
    assert load_index(tmp_path / "missing.safetensors", split.clip_ids) is None
    path.write_bytes(b"garbage")
    assert load_index(path, split.clip_ids) is None


def test_trained_seed_dir(tmp_path):
    for seed in (2, 0):
        (tmp_path / f"seed-{seed}" / runs.BEST).mkdir(parents=True)
    (tmp_path / "seed-5").mkdir()  # unfinished: no best/
    assert runs.trained_seed_dir(tmp_path) == tmp_path / "seed-0"
    assert runs.trained_seed_dir(tmp_path, 2) == tmp_path / "seed-2"
    assert runs.trained_seed_dir(tmp_path / "seed-2") == tmp_path / "seed-2"
    with pytest.raises(UserError, match="no trained seed 5"):
        runs.trained_seed_dir(tmp_path, 5)
    with pytest.raises(UserError, match="does not exist"):
        runs.trained_seed_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no trained model"):
        runs.trained_seed_dir(tmp_path / "empty")


# ------------------------------------------------------------------------------------------------ real runs
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny late- and mid-fusion runs on the smoke teaching set (one epoch each)."""
    from hybridlib.training import train

    root = tmp_path_factory.mktemp("search-runs")
    out = {}
    for name in ("hybrid-late", "hybrid-mid"):
        cfg = teaching_config(name, smoke=True, epochs=1, tensorboard=False)
        train(cfg, runs.seed_dir(root / name, 0), progress=False)
        out[name] = root / name
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hybrid-late", "hybrid-mid"])
def test_search_agrees_with_evaluation_and_caches_the_collection(trained, name, tmp_path):
    searcher = Searcher.from_run(trained[name], cache_root=tmp_path)
    assert not searcher.info["cache_hit"] and searcher.split == "evaluation"
    agreement = agreement_with_evaluation(searcher)
    assert agreement["max_abs_score_diff"] == 0.0 and agreement["same_rank"] == agreement["captions"] == 80
    assert agreement["t2a_mAP@10_search"] == agreement["t2a_mAP@10_evaluation"]
    result = searcher.search("a dog barks while rain falls")
    assert len(result.hits) == 10 and result.n_items == 16
    assert [h.rank for h in result.hits] == sorted(h.rank for h in result.hits)
    assert all(abs(sum(h.parts.values()) - h.score) < 1e-5 for h in result.hits)
    assert (result.query_weights is not None) == (name == "hybrid-mid")
    alone = searcher.search("a dog barks while rain falls", audio_alone=True)
    assert [h.score for h in alone.hits] != [h.score for h in result.hits]
    assert all(h.metadata_text is None and "metadata" not in h.parts for h in alone.hits)
    # the second load reads the index and searches identically
    again = Searcher.from_run(trained[name], cache_root=tmp_path)
    assert again.info["cache_hit"] and again.info["cache"] == searcher.info["cache"]
    assert [(h.clip_id, h.score) for h in again.search(result.query).hits] == [(h.clip_id, h.score) for h in result.hits]
    with pytest.raises(UserError, match="empty"):
        searcher.search("   ")
    text = result.to_text()
    assert len(text.splitlines()) == 12 and result.hits[0].clip_id in text


@pytest.mark.slow
def test_search_widget_lists_ten_players_and_the_toggle_reranks(trained, tmp_path):
    ipywidgets = pytest.importorskip("ipywidgets")
    from hybridlib.search_widget import search_widget

    searcher = Searcher.from_run(trained["hybrid-late"], cache_root=tmp_path)
    box = search_widget(searcher, query="birds chirp in a forest")
    (query, toggle), _, header, results = box.children[0].children, *box.children[1:]
    players = [c for row in results.children for c in row.children if isinstance(c, ipywidgets.Audio)]
    assert len(results.children) == 10 and len(players) == 10
    assert players[0].value[:4] == b"RIFF" and "keywords" in results.children[0].children[2].value
    before = header.value
    toggle.value = True
    assert header.value != before and "audio alone" in header.value
    assert "metadata hidden" in results.children[0].children[2].value
    query.value = ""
    assert results.children == () and "Type a query" in header.value


@pytest.mark.slow
def test_cli_search_prints_the_table_and_reports_bad_input(trained):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "hybridlib", "search", *args], capture_output=True, text=True,
                              timeout=300)

    proc = run("--run", str(trained["hybrid-mid"]), "a car engine idles", "-k", "5", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("query 'a car engine idles'"))
    assert "query weights audio" in lines[header] and lines[header + 1].split()[:4] == ["rank", "score", "audio",
                                                                                         "metadata"]
    rows = lines[header + 2:header + 7]
    assert len(rows) == 5 and [int(r.split()[0]) for r in rows] == sorted(int(r.split()[0]) for r in rows)
    alone = run("--run", str(trained["hybrid-late"]), "a car engine idles", "--audio-alone", "--no-progress")
    assert alone.returncode == 0 and "(hidden)" in alone.stdout and "audio alone:" in alone.stdout
    for args, message in ((["--run", str(trained["hybrid-mid"]) + "-missing", "x"], "does not exist"),
                          (["--run", str(trained["hybrid-mid"]), "--seed", "7", "x"], "no trained seed 7"),
                          (["--run", str(trained["hybrid-mid"]), " "], "empty")):
        proc = run(*args)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and message in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_long_query_is_echoed_shortened_and_text_that_is_not_utf8_is_refused(trained):
    query = "dog barking " * 8_334  # 100,008 characters
    proc = subprocess.run([sys.executable, "-m", "hybridlib", "search", "--run", str(trained["hybrid-late"]), query,
                           "-k", "3", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    header = next(line for line in proc.stdout.splitlines() if line.startswith("query "))
    assert header.startswith("query 'dog barking dog barking") and "... (100,008 characters): late fusion" in header
    assert len(proc.stdout) < 3000 and len(header) < 200
    searcher = Searcher.from_run(trained["hybrid-late"])
    assert searcher.search(query, k=3).to_text().splitlines()[0] == header
    with pytest.raises(UserError, match=r"^the query 'dog \\udcff' is not UTF-8 text \(bytes b'\\xff' at character 4\)$"):
        searcher.search(os.fsdecode(b"dog \xff"))
