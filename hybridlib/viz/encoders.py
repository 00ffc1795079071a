"""Plots for notebook 03 (encoders): waveform -> log-mel -> frames, frame similarities, text embeddings,
positional encodings and the transformer pooling's attention."""

from __future__ import annotations

from collections.abc import Sequence

from hybridlib.util.markup import escape_mathtext
from hybridlib.viz import axes_for


def _np(x):
    import numpy as np

    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x)


def plot_encoder_stages(waveform, sample_rate: int, logmel, frames, ax=None, title: str | None = None,
                        standardize: bool = True):  # fmt: skip
    """Three aligned panels: waveform, log-mel ``[T, M]`` (time first), frame embeddings ``[T', D]``.

    ``ax``: a sequence of three axes, or None for a new figure. All panels share the time axis in seconds.
    ``standardize`` shows each embedding channel z-scored over time, so its changes are visible whatever
    its scale.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        fig, ax = plt.subplots(
            3, 1, figsize=(9, 7), sharex=True, gridspec_kw={"height_ratios": [1, 1.6, 1.6]}
        )
    fig = ax[0].figure
    wave, spec, emb = _np(waveform), _np(logmel), _np(frames)
    if standardize:
        emb = (emb - emb.mean(0)) / np.maximum(emb.std(0), 1e-6)
    duration = len(wave) / sample_rate
    ax[0].plot(np.arange(len(wave)) / sample_rate, wave, lw=0.4, color="tab:blue")
    ax[0].set_ylabel("amplitude")
    ax[0].set_title(escape_mathtext(title) if title else "waveform")
    im = ax[1].imshow(
        spec.T, origin="lower", aspect="auto", extent=[0, duration, 0, spec.shape[1]], cmap="magma"
    )
    ax[1].set_ylabel("mel band")
    ax[1].set_title(f"log-mel input {spec.shape[0]} x {spec.shape[1]}")
    fig.colorbar(im, ax=ax[1], pad=0.01)
    cmap = "RdBu_r" if standardize else "viridis"
    im = ax[2].imshow(emb.T, origin="lower", aspect="auto", extent=[0, duration, 0, emb.shape[1]], cmap=cmap)
    ax[2].set_ylabel("channel")
    ax[2].set_xlabel("time (s)")
    what = "z-scored per channel" if standardize else "last conv stage, mean over frequency"
    ax[2].set_title(f"frame embeddings {emb.shape[0]} x {emb.shape[1]} ({what})")
    fig.colorbar(im, ax=ax[2], pad=0.01)
    return fig


def plot_frame_similarity(frames: Sequence, labels: Sequence[str], ax=None, title: str | None = None):
    """Cosine similarity between all frames of several clips (concatenated), with clip boundaries.

    Bright blocks on the diagonal and dark off-diagonal blocks mean the backbone tells the sounds apart.
    """
    import numpy as np

    mats = [_np(f) for f in frames]
    allf = np.concatenate(mats)
    unit = allf / np.maximum(np.linalg.norm(allf, axis=1, keepdims=True), 1e-12)
    sim = unit @ unit.T
    fig, ax = axes_for(ax, (6.5, 5.5))
    im = ax.imshow(sim, cmap="viridis", vmin=min(0.0, float(sim.min())), vmax=1.0)
    edges = np.cumsum([0] + [len(m) for m in mats])
    for e in edges[1:-1]:
        ax.axhline(e - 0.5, color="white", lw=1)
        ax.axvline(e - 0.5, color="white", lw=1)
    centers = (edges[:-1] + edges[1:]) / 2 - 0.5
    labels = [escape_mathtext(label) for label in labels]
    ax.set_xticks(centers, labels, rotation=45, ha="right")
    ax.set_yticks(centers, labels)
    ax.set_title(escape_mathtext(title) if title else "cosine similarity of frames")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def plot_similarity_matrix(matrix, labels: Sequence[str], ax=None, title: str | None = None, annotate: bool = True,
                           cmap: str = "viridis"):  # fmt: skip
    """A labelled square similarity matrix (e.g. class centroids or text embeddings)."""
    m = _np(matrix)
    fig, ax = axes_for(ax, (0.5 * len(labels) + 3, 0.45 * len(labels) + 2.5))
    im = ax.imshow(m, cmap=cmap)
    labels = [escape_mathtext(label) for label in labels]
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    if annotate and len(labels) <= 12:
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] < m.mean() else "black")  # fmt: skip
    if title:
        ax.set_title(escape_mathtext(title))
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def plot_embedding_strips(vectors, labels: Sequence[str], ax=None, title: str | None = None, dims: int = 96):
    """The first ``dims`` coordinates of several embeddings as coloured strips (one row per text)."""
    v = _np(vectors)[:, :dims]
    fig, ax = axes_for(ax, (9, 0.35 * len(labels) + 1.2))
    lim = float(abs(v).max()) or 1.0
    im = ax.imshow(v, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_yticks(range(len(labels)), [escape_mathtext(label) for label in labels])
    ax.set_xlabel(f"embedding dimension (first {v.shape[1]})")
    if title:
        ax.set_title(escape_mathtext(title))
    fig.colorbar(im, ax=ax, fraction=0.03)
    return fig


def plot_positional_encoding(encoding, ax=None, title: str | None = None):
    """The sinusoidal positional encoding ``[T, d]`` as an image (time steps x channels)."""
    pe = _np(encoding)
    fig, ax = axes_for(ax, (7, 3))
    im = ax.imshow(pe.T, aspect="auto", origin="lower", cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xlabel("frame position")
    ax.set_ylabel("channel")
    ax.set_title(title or "fixed sinusoidal positional encoding")
    fig.colorbar(im, ax=ax, fraction=0.03)
    return fig


def plot_global_attention(attention: Sequence, n_frames: int, frame_rate: float | None = None, ax=None,
                          extra_labels: Sequence[str] = (), title: str | None = None):  # fmt: skip
    """How much the global token (query position 0) attends to each frame, one line per layer.

    ``attention``: per-layer ``[S, S]`` or ``[1, S, S]`` (one clip) weights from
    ``TransformerPooling(return_attention=True)``, ``S = 1 + T + E``. Extra tokens (e.g. the metadata token) are drawn as labelled markers at the right.
    """
    import numpy as np

    fig, ax = axes_for(ax, (8, 3.2))
    x = np.arange(n_frames) / frame_rate if frame_rate else np.arange(n_frames)
    for i, weights in enumerate(attention):
        w = _np(weights)
        row = (w[0] if w.ndim == 3 else w)[0]  # the global token's attention row
        line = ax.plot(x, row[1 : 1 + n_frames], marker=".", lw=1, label=f"layer {i + 1}")[0]
        ax.axhline(row[0], color=line.get_color(), ls=":", lw=0.8)
        for j, name in enumerate(extra_labels):
            ax.scatter([x[-1] + (j + 1) * (x[1] - x[0] if n_frames > 1 else 1)], [row[1 + n_frames + j]],
                       color=line.get_color(), marker="*", s=60)  # fmt: skip
            if i == 0:
                ax.annotate(name, (x[-1] + (j + 1) * (x[1] - x[0] if n_frames > 1 else 1), row[1 + n_frames + j]),
                            textcoords="offset points", xytext=(4, 4), fontsize=8)  # fmt: skip
    ax.axhline(1.0 / (1 + n_frames + len(extra_labels)), color="grey", ls="--", lw=0.8, label="uniform")
    ax.set_xlabel("time (s)" if frame_rate else "frame")
    ax.set_ylabel("attention of global token")
    ax.set_title(title or "global token attention over frames (dotted: to itself)")
    ax.legend(fontsize=8)
    return fig
