"""Plots for notebook 04 (fusion): mid fusion's query-dependent score weights, and fusion comparisons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hybridlib.util.markup import escape_mathtext
from hybridlib.viz import axes_for, pretty_metric


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def plot_query_weights(queries: Sequence[str], weights, ax=None, labels=("audio", "metadata"),
                       colors=("tab:blue", "tab:orange"), max_chars: int = 48):
    """Horizontal stacked bars: each query's softmax weights over (audio, metadata) scores.

    ``weights`` is ``[Q, 2]`` (``QueryEmbeddings.weights`` of a mid-fusion model, rows summing to 1).
    """
    import numpy as np

    w = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=float)
    if w.ndim != 2 or w.shape[0] != len(queries) or w.shape[1] != len(labels):
        raise ValueError(f"weights must have shape [{len(queries)}, {len(labels)}], got {w.shape}")
    fig, ax = axes_for(ax, (8, 0.45 * len(queries) + 1.2))
    y = np.arange(len(queries))
    left = np.zeros(len(queries))
    for j, (label, color) in enumerate(zip(labels, colors)):
        ax.barh(y, w[:, j], left=left, color=color, label=label)
        left += w[:, j]
    for i, value in enumerate(w[:, 0]):
        ax.text(value / 2, i, f"{value:.2f}", va="center", ha="center", fontsize=8, color="white")
    ax.set_yticks(y, [escape_mathtext(_shorten(q, max_chars)) for q in queries])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("softmax weight of each score")
    ax.set_title("Mid fusion: how much each query trusts audio vs metadata")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_fusion_comparison(results: Mapping[str, Mapping[str, float]], metric: str = "mAP@10", ax=None,
                           spread: Mapping[str, float] | None = None, reference: Mapping[str, float] | None = None):
    """Bars of one metric per model (e.g. ``{"none": {...}, "late": {...}, "mid": {...}}``).

    ``spread``: optional standard deviation per model (error bars); ``reference``: optional value per
    model drawn as a marker (e.g. the paper's number).
    """
    names = list(results)
    values = [float(results[n][metric]) for n in names]
    fig, ax = axes_for(ax, (1.3 * len(names) + 2, 3.2))
    errors = [float(spread.get(n, 0.0)) for n in names] if spread else None
    bars = ax.bar(names, values, yerr=errors, capsize=4, color="tab:blue", alpha=0.85)
    for bar, value in zip(bars, values):
        ax.annotate(f"{value:.1f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 2), textcoords="offset points")
    if reference:
        xs = [i for i, n in enumerate(names) if n in reference]
        ax.scatter(xs, [reference[names[i]] for i in xs], marker="_", s=400, color="tab:red", zorder=3,
                   label="reference")
        ax.legend(fontsize=8)
    ax.set_ylabel(pretty_metric(metric))
    ax.set_title(f"{pretty_metric(metric)} by item representation")
    return fig


def plot_score_components(audio_scores, metadata_scores, weights, ax=None, title: str | None = None):
    """For one query: each item's audio cosine vs metadata cosine, coloured by its mixed score.

    ``audio_scores``/``metadata_scores``: ``[A]``; ``weights``: ``[2]`` (or ``[A, 2]`` per item).
    """
    import numpy as np

    a = np.asarray(audio_scores, dtype=float)
    m = np.asarray(metadata_scores, dtype=float)
    w = np.asarray(weights, dtype=float)
    w = np.broadcast_to(w, (a.shape[0], 2))
    mixed = w[:, 0] * a + w[:, 1] * m
    fig, ax = axes_for(ax, (4.5, 4))
    points = ax.scatter(a, m, c=mixed, cmap="viridis", s=18)
    fig.colorbar(points, ax=ax, label="mixed score")
    ax.set_xlabel("audio-query · audio token (cosine)")
    ax.set_ylabel("metadata-query · metadata token (cosine)")
    ax.set_title(escape_mathtext(title) if title else "Mid fusion: the two scores of every item")
    return fig


def token_attention_shares(attention, n_frames: int, frame_lengths=None):
    """Where the global token (first) and the metadata token (last) look, per layer.

    ``attention``: list over layers of ``[B, S, S]`` head-averaged weights with ``S = 1 + n_frames + 1``
    (``PooledOutput.attention`` of mid fusion). Returns a nested dict
    ``{layer: {"global token" | "metadata token": {"global token", "frames", "metadata token"}}}`` of mean
    attention mass over the batch (padded frames receive no attention, so the three shares sum to 1).
    """
    out = {}
    for layer, weights in enumerate(attention, start=1):
        w = weights.detach().float().cpu()
        if w.dim() != 3 or w.shape[-1] != n_frames + 2:
            raise ValueError(f"layer {layer}: expected [B, {n_frames + 2}, {n_frames + 2}] attention, "
                             f"got {tuple(w.shape)}")
        rows = {}
        for name, row in (("global token", 0), ("metadata token", -1)):
            r = w[:, row, :]
            rows[name] = {"global token": float(r[:, 0].mean()), "frames": float(r[:, 1:-1].sum(-1).mean()),
                          "metadata token": float(r[:, -1].mean())}
        out[layer] = rows
    return out


def plot_token_attention(attention, n_frames: int, ax=None,
                         colors=("tab:purple", "tab:blue", "tab:orange")):
    """Stacked bars per layer: how the global audio token and the metadata token split their attention
    between the global token, the audio frames and the metadata token (see :func:`token_attention_shares`)."""
    import numpy as np

    shares = token_attention_shares(attention, n_frames)
    labels, stacks = [], []
    for layer, rows in shares.items():
        for name, parts in rows.items():
            labels.append(f"layer {layer}\n{name}")
            stacks.append([parts["global token"], parts["frames"], parts["metadata token"]])
    stacks = np.asarray(stacks)
    fig, ax = axes_for(ax, (1.4 * len(labels) + 1.5, 3.4))
    bottom = np.zeros(len(labels))
    for j, (part, color) in enumerate(zip(("global token", "frames", "metadata token"), colors)):
        ax.bar(labels, stacks[:, j], bottom=bottom, color=color, label=f"to {part}")
        bottom += stacks[:, j]
    ax.set_ylim(0, 1)
    ax.set_ylabel("attention mass (batch mean)")
    ax.set_title("Mid fusion: who attends to what")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.tick_params(axis="x", labelsize=8)
    return fig
