"""A schematic of the retrieval architectures (drawn with matplotlib, no image files)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

COLORS = {"audio": "#4C72B0", "meta": "#DD8452", "query": "#55A868", "fused": "#8172B3"}

# boxes per fusion: (label, x, y, colour key); arrows as (from label, to label)
_LAYOUTS = {
    "none": (
        [("audio clip", 0, 2, "audio"), ("audio CNN\n(frames)", 1, 2, "audio"), ("transformer\npooling", 2, 2, "audio"),
         ("projection", 3, 2, "audio"), ("query text", 0, 0, "query"), ("text encoder\n(CLS)", 1.5, 0, "query"),
         ("projection ", 3, 0, "query"), ("cosine\nsimilarity", 4, 1, "fused")],
        [("audio clip", "audio CNN\n(frames)"), ("audio CNN\n(frames)", "transformer\npooling"),
         ("transformer\npooling", "projection"), ("projection", "cosine\nsimilarity"),
         ("query text", "text encoder\n(CLS)"), ("text encoder\n(CLS)", "projection "),
         ("projection ", "cosine\nsimilarity")],
    ),
    "late": (
        [("audio clip", 0, 2, "audio"), ("audio CNN\n+ pooling", 1, 2, "audio"), ("metadata\n(tags)", 0, 1, "meta"),
         ("text encoder\n(shared)", 1, 1, "meta"), ("sum", 2, 1.5, "fused"), ("projection", 3, 1.5, "fused"),
         ("query text", 0, 0, "query"), ("text encoder", 1, 0, "query"), ("projection ", 3, 0, "query"),
         ("cosine\nsimilarity", 4, 0.75, "fused")],
        [("audio clip", "audio CNN\n+ pooling"), ("audio CNN\n+ pooling", "sum"), ("metadata\n(tags)", "text encoder\n(shared)"),
         ("text encoder\n(shared)", "sum"), ("sum", "projection"), ("projection", "cosine\nsimilarity"),
         ("query text", "text encoder"), ("text encoder", "projection "), ("projection ", "cosine\nsimilarity")],
    ),
    "mid": (
        [("audio frames", 0, 2, "audio"), ("metadata\ntoken", 0, 1, "meta"), ("joint\ntransformer", 1.5, 1.5, "fused"),
         ("global audio\ntoken", 2.8, 2, "audio"), ("metadata\ntoken out", 2.8, 1, "meta"), ("query text", 0, 0, "query"),
         ("gated units\n+ weights", 1.5, 0, "query"), ("weighted\nscore sum", 4, 1, "fused")],
        [("audio frames", "joint\ntransformer"), ("metadata\ntoken", "joint\ntransformer"),
         ("joint\ntransformer", "global audio\ntoken"), ("joint\ntransformer", "metadata\ntoken out"),
         ("global audio\ntoken", "weighted\nscore sum"), ("metadata\ntoken out", "weighted\nscore sum"),
         ("query text", "gated units\n+ weights"), ("gated units\n+ weights", "weighted\nscore sum")],
    ),
}


def plot_architecture(fusion: str = "late", ax=None):
    """Draw the content-only (``none``), late-fusion or mid-level-fusion model as boxes and arrows."""
    if fusion not in _LAYOUTS:
        raise ValueError(f"fusion must be one of {sorted(_LAYOUTS)}, got {fusion!r}")
    fig = ax.figure if ax is not None else plt.figure(figsize=(8, 3.2))
    ax = ax if ax is not None else fig.add_subplot()
    boxes, arrows = _LAYOUTS[fusion]
    centers = {}
    for label, x, y, kind in boxes:
        ax.add_patch(FancyBboxPatch((x - 0.4, y - 0.3), 0.8, 0.6, boxstyle="round,pad=0.02",
                                    facecolor=COLORS[kind], alpha=0.25, edgecolor=COLORS[kind]))
        ax.text(x, y, label.strip(), ha="center", va="center", fontsize=8)
        centers[label] = (x, y)
    for start, end in arrows:
        (x0, y0), (x1, y1) = centers[start], centers[end]
        ax.add_patch(FancyArrowPatch((x0 + 0.4, y0), (x1 - 0.4, y1), arrowstyle="-|>", mutation_scale=10,
                                     color="0.3", linewidth=1))
    ax.set_xlim(-0.6, 4.6)
    ax.set_ylim(-0.5, 2.5)
    ax.set_axis_off()
    ax.set_title({"none": "content-only baseline", "late": "late fusion (sum)",
                  "mid": "mid-level fusion (multimodal transformer)"}[fusion], fontsize=10)
    return fig
