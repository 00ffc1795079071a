"""Metadata-only similarity and the data plot helpers."""

from __future__ import annotations

from collections import Counter

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from hybridlib.data import Item  # noqa: E402
from hybridlib.data.metadata_retrieval import cosine_matrix, metadata_similarity  # noqa: E402
from hybridlib.viz import data as vd  # noqa: E402

VOCAB = ["dog", "rain", "bell", "kitchen"]


def _bow(texts):
    return torch.tensor([[float(w in t.split()) for w in VOCAB] for t in texts])


def test_cosine_matrix():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    assert torch.allclose(cosine_matrix(a, b), torch.tensor([[1.0, 0.0], [2**-0.5, 2**-0.5]]))


def test_metadata_similarity_ranks_and_missing():
    items = [Item("a", None, ["c"], keywords=["Dog", "kitchen"]), Item("b", None, ["c"], keywords=["rain"]),
             Item("c", None, ["c"], keywords=None)]
    queries = _bow(["dog", "rain"])
    sim = metadata_similarity(queries, items, "os", _bow)
    assert sim.shape == (2, 3)
    assert torch.allclose(sim[:, :2], torch.tensor([[2**-0.5, 0.0], [0.0, 1.0]]))
    assert ((sim[:, 2] <= -2) & (sim[:, 2] > -2.5)).all()
    many = [Item(str(i), None, ["c"]) for i in range(50)]
    order = metadata_similarity(_bow(["dog"]), many, "os", _bow, seed=1).argsort(dim=1, descending=True)[0]
    assert order.tolist() != list(range(50))  # missing clips in random order, not by index
    again = metadata_similarity(_bow(["dog"]), many, "os", _bow, seed=1).argsort(dim=1, descending=True)[0]
    assert torch.equal(order, again)
    seen = []
    metadata_similarity(queries, items, "os", lambda t: seen.extend(t) or _bow(t))
    assert seen == ["dog kitchen", "rain"]


def test_plots_return_figures():
    import matplotlib.pyplot as plt

    fig = vd.plot_caption_lengths({"a": [3, 4, 5], "b": [8, 9]})
    assert len(fig.axes[0].get_legend().get_texts()) == 2
    fig2 = vd.plot_top_words(Counter("a a b c c c".split()), top=2)
    assert [t.get_text() for t in fig2.axes[0].get_yticklabels()] == ["a", "c"]
    table = pd.DataFrame({"keyword": ["x", "y"], "clips": [3, 2], "keyword_freq": [0.3, 0.2],
                          "caption_freq": [0.1, 0.0]})
    fig3 = vd.plot_keyword_caption_frequency(table)
    assert len(fig3.axes[0].patches) == 4
    fig4 = vd.plot_spectrogram(torch.randn(16000), 16000, events=[{"label": "dog", "onset": 0.1, "offset": 0.5}])
    assert fig4.axes[0].texts[0].get_text() == "dog"
    sweep = pd.DataFrame({"knob": ["drop", "drop", "add"], "strength": [0, 0.5, 0.5], "mAP@10": [50, 30, 40]})
    fig5 = vd.plot_degradation(sweep, baseline=5.0)
    assert len(fig5.axes[0].lines) == 3
    _, ax = plt.subplots()
    assert vd.plot_durations({"t": [5.0, 7.5]}, ax=ax) is ax.figure
    plt.close("all")


def test_random_baseline_matches_expectation():
    from hybridlib.data.metadata_retrieval import random_baseline
    from hybridlib.metrics import text_to_audio

    target = torch.arange(16).repeat_interleave(4)
    base = random_baseline(target, 16, text_to_audio, repeats=50)
    assert abs(base["R@1"] - 100 / 16) < 2.0  # expected recall@1 of a random ranking over 16 clips
    assert abs(base["R@10"] - 100 * 10 / 16) < 4.0
