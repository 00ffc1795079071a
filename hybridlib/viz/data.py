"""Plots for notebooks 01-02 (data and metadata): captions, clips, the hybrid paper's Fig. 4, degradation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from hybridlib.util.markup import escape_mathtext
from hybridlib.viz import axes_for, pretty_metric


def plot_caption_lengths(lengths: Mapping[str, Sequence[int]], ax=None):
    """Histogram of words per caption, one series per dataset name (``{"teaching": [...], ...}``)."""
    import numpy as np

    fig, ax = axes_for(ax, (6, 3.5))
    top = max((max(v) for v in lengths.values() if len(v)), default=1)
    bins = np.arange(0, top + 2) - 0.5
    for name, values in lengths.items():
        ax.hist(values, bins=bins, alpha=0.6, density=True, label=f"{name} (mean {np.mean(values):.1f})")
    ax.set_xlabel("words per caption")
    ax.set_ylabel("fraction of captions")
    ax.legend()
    return fig


def plot_top_words(counts: Counter | Mapping[str, int], top: int = 20, ax=None, title: str | None = None,
                   color: str = "tab:blue"):
    """Horizontal bars of the ``top`` most frequent words (or tags)."""
    counts = Counter(counts)
    words = counts.most_common(top)[::-1]
    fig, ax = axes_for(ax, (5, 0.28 * len(words) + 1))
    ax.barh([escape_mathtext(w) for w, _ in words], [c for _, c in words], color=color)
    ax.set_xlabel("count")
    if title:
        ax.set_title(escape_mathtext(title))
    return fig


def plot_durations(durations: Mapping[str, Sequence[float]], ax=None):
    """Histogram of clip durations in seconds, one series per dataset name."""
    fig, ax = axes_for(ax, (6, 3.5))
    for name, values in durations.items():
        ax.hist(values, bins=20, alpha=0.6, label=name)
    ax.set_xlabel("clip duration (s)")
    ax.set_ylabel("clips")
    ax.legend()
    return fig


def plot_spectrogram(waveform, sample_rate: int, ax=None, title: str | None = None, n_mels: int = 64,
                     events: Sequence[Mapping] | None = None):
    """Log-mel spectrogram (torchaudio) with optional ground-truth events drawn as labelled spans.

    ``events``: dicts with ``label``, ``onset``, ``offset`` (seconds), e.g. rows of the teaching set's
    ``events.csv``.
    """
    import torch
    import torchaudio

    wave = torch.as_tensor(waveform, dtype=torch.float32).reshape(1, -1)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=1024, hop_length=512, n_mels=n_mels)(wave)[0]
    db = 10 * torch.log10(mel + 1e-10)
    fig, ax = axes_for(ax, (7, 3))
    duration = wave.shape[-1] / sample_rate
    ax.imshow(db.numpy(), origin="lower", aspect="auto", extent=(0, duration, 0, n_mels), cmap="magma",
              vmin=float(db.max()) - 80)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    for k, ev in enumerate(events or []):
        y = n_mels * (0.92 - 0.1 * (k % 4))
        ax.plot([float(ev["onset"]), float(ev["offset"])], [y, y], color="cyan", lw=3)
        ax.text(float(ev["onset"]), y + 1, escape_mathtext(ev["label"]), color="cyan", fontsize=8, va="bottom")
    if title:
        ax.set_title(escape_mathtext(title), fontsize=9)
    return fig


def plot_keyword_caption_frequency(table, ax=None, title: str | None = None):
    """Replica of the hybrid paper's Fig. 4: top keywords' relative frequency vs their frequency in captions.

    ``table``: the DataFrame of :func:`hybridlib.data.metadata.keyword_caption_frequencies`.
    """
    import numpy as np

    fig, ax = axes_for(ax, (8, 3.5))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["keyword_freq"], width=0.4, color="tab:blue", label="keywords (fraction of clips)")
    ax.bar(x + 0.2, table["caption_freq"], width=0.4, color="tab:orange", label="captions (fraction of captions)")
    ax.set_xticks(x, [escape_mathtext(k) for k in table["keyword"]], rotation=60, ha="right")
    ax.set_ylabel("relative frequency")
    ax.legend()
    if title:
        ax.set_title(escape_mathtext(title))
    return fig


def plot_tags_per_clip(counts: Mapping[str, Sequence[int]], ax=None):
    """Histogram of the number of tags per clip (clips without metadata excluded), one series per kind."""
    import numpy as np

    fig, ax = axes_for(ax, (6, 3.5))
    top = max((max(v) for v in counts.values() if len(v)), default=1)
    bins = np.arange(0, top + 2) - 0.5
    for name, values in counts.items():
        ax.hist(values, bins=bins, alpha=0.6, label=name)
    ax.set_xlabel("tags per clip")
    ax.set_ylabel("clips")
    ax.legend()
    return fig


def plot_degradation(results, metric: str = "mAP@10", ax=None, baseline: float | None = None):
    """Metric vs degradation strength, one line per knob.

    ``results``: DataFrame with columns ``knob``, ``strength`` and ``metric``; ``baseline``: a horizontal
    reference line (e.g. the random-ranking value).
    """
    fig, ax = axes_for(ax, (6, 3.5))
    for knob, group in results.groupby("knob", sort=False):
        group = group.sort_values("strength")
        ax.plot(group["strength"], group[metric], marker="o", label=knob)
    if baseline is not None:
        ax.axhline(baseline, color="gray", ls="--", label="random ranking")
    ax.set_xlabel("degradation strength (fraction)")
    ax.set_ylabel(pretty_metric(metric))
    ax.legend()
    return fig
