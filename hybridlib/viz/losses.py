"""Plots for notebook 05 (losses): response to one negative, polynomial weights, temperature, batch size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hybridlib.viz import axes_for

LOSS_COLORS = {
    "triplet-sum": "tab:blue",
    "triplet-max": "tab:red",
    "triplet-weighted": "tab:purple",
    "nt-xent": "tab:green",
}
LOSS_STYLES = {"triplet-sum": "-", "triplet-max": "--", "triplet-weighted": "-.", "nt-xent": "-"}



def _np(x):
    import numpy as np

    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=float)


def plot_negative_response(responses: Mapping[str, Mapping], value: str = "grad", positive: float | None = None,
                           margin: float | None = None, background: float | None = None, normalise: bool = False,
                           relative: bool = False, ax=None):
    """One curve per loss: its value (``value="loss"``) or the gradient weight on one negative (``"grad"``)
    against that negative's similarity.

    ``responses`` maps a loss name to the output of :func:`hybridlib.losses.negative_response`.
    ``positive`` and ``margin`` draw the positive's similarity and the margin boundary ``s_ii - m``;
    ``background`` the similarity of the other negatives. ``normalise`` divides each curve by its maximum,
    to compare where each loss acts rather than its scale; ``relative`` subtracts the value at the
    lowest probed similarity (the extra loss this negative causes).
    """
    if value not in {"loss", "grad"}:
        raise ValueError(f"`value` must be 'loss' or 'grad', got {value!r}")
    import numpy as np

    fig, ax = axes_for(ax, (6, 4))
    for name, resp in responses.items():
        y = _np(resp[value])
        if relative:
            y = y - y[np.argmin(_np(resp["similarity"]))]
        if normalise and np.abs(y).max() > 0:
            y = y / np.abs(y).max()
        ax.plot(_np(resp["similarity"]), y, label=name, color=LOSS_COLORS.get(name),
                ls=LOSS_STYLES.get(name, "-"), lw=2)
    if background is not None:
        ax.axvline(background, color="tab:orange", ls=":", lw=1, label=f"other negatives = {background:g}")
    if positive is not None:
        ax.axvline(positive, color="k", ls="--", lw=1, label=f"positive s_ii = {positive:g}")
        if margin is not None:
            ax.axvline(positive - margin, color="gray", ls=":", lw=1, label=f"s_ii - margin = {positive - margin:g}")
    ax.set_xlabel("similarity of one negative s_ij")
    label = "loss" if value == "loss" else "gradient weight dL/ds_ij"
    if relative:
        label = f"{label} minus its value for the easiest negative"
    ax.set_ylabel(label + (" / its maximum" if normalise else ""))
    ax.set_title("loss vs. one negative" if value == "loss" else "how hard each loss pushes that negative away")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_polynomial_weights(pos_coeffs: Sequence[float], neg_coeffs: Sequence[float], ax=None):
    """The polynomial terms of triplet-weighted, ``G_pos(s)`` and ``G_neg(s)`` (eq. 4-5), and their hinges."""
    import torch

    from hybridlib.losses import polynomial

    fig, ax = axes_for(ax, (6, 4))
    s = torch.linspace(-1, 1, 401, dtype=torch.float64)
    g_pos, g_neg = polynomial(s, pos_coeffs), polynomial(s, neg_coeffs)
    ax.plot(s, g_pos, color="tab:blue", lw=1, ls="--", alpha=0.6)
    ax.plot(s, g_neg, color="tab:red", lw=1, ls="--", alpha=0.6)
    ax.plot(s, g_pos.clamp(min=0), color="tab:blue", lw=2, label="[G_pos(s_ii)]+  (positive pair)")
    ax.plot(s, g_neg.clamp(min=0), color="tab:red", lw=2, label="[G_neg(s_ij)]+  (hardest negative)")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("similarity s")
    ax.set_ylabel("loss term (dashed: before the hinge)")
    ax.set_title("triplet-weighted: polynomial weighting of Wei et al.")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_temperature_weights(similarities, taus: Sequence[float], positive: float | None = None, ax=None):
    """Share of NT-Xent's push-away gradient that each negative receives, ``softmax(s / tau)`` over the
    negatives (the gradient on ``s_ij`` is ``p_ij / tau``), for several temperatures.
    """
    import matplotlib
    import torch

    fig, ax = axes_for(ax, (6, 4))
    s = torch.as_tensor(_np(similarities), dtype=torch.float64)
    order = torch.argsort(s)
    s = s[order]
    cmap = matplotlib.colormaps["viridis"]
    for i, tau in enumerate(taus):
        logits = s / tau
        if positive is not None:  # the softmax includes the positive in its denominator
            logits = torch.cat([logits, torch.tensor([positive / tau], dtype=torch.float64)])
        share = torch.softmax(logits, 0)[: len(s)]
        share = share / share.sum()
        ax.plot(s, share, marker="o", ms=3, lw=1.5, color=cmap(i / max(1, len(taus) - 1)), label=f"tau = {tau:g}")
    ax.set_xlabel("similarity of the negative")
    ax.set_ylabel("share of the gradient on negatives")
    ax.set_yscale("log")
    ax.set_title("NT-Xent temperature: low tau focuses on the hardest negatives")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_batch_size_sweep(table, metric: str = "mAP@10", paper: Mapping | None = None, ax=None):
    """Grouped bars: ``metric`` per loss and batch size (mean over seeds, error bar = std when several).

    ``table`` is the first output of :func:`hybridlib.toy_embeddings.batch_size_sweep`.
    """
    import numpy as np

    if metric not in table.columns:
        raise ValueError(f"`metric` {metric!r} is not a column of the table ({list(table.columns)})")
    fig, ax = axes_for(ax, (7, 4))
    stats = table.groupby(["loss", "batch_size"], sort=False)[metric].agg(["mean", "std", "count"]).reset_index()
    losses = list(dict.fromkeys(stats["loss"]))
    sizes = sorted(stats["batch_size"].unique())
    width = 0.8 / len(sizes)
    x = np.arange(len(losses))
    alphas = np.linspace(1.0, 0.4, len(sizes)) if len(sizes) > 1 else [1.0]
    for k, b in enumerate(sizes):
        sub = stats[stats.batch_size == b].set_index("loss").reindex(losses)
        err = sub["std"].where(sub["count"] > 1).fillna(0).to_numpy()
        ax.bar(x + (k - (len(sizes) - 1) / 2) * width, sub["mean"], width, yerr=err, alpha=alphas[k],
               color=[LOSS_COLORS.get(name, "gray") for name in losses], edgecolor="k", label=f"B = {b}")
        for xi, v in zip(x, sub["mean"]):
            ax.text(xi + (k - (len(sizes) - 1) / 2) * width, v + 0.5, f"{v:.0f}", ha="center", fontsize=7)
    from matplotlib.patches import Patch

    ax.set_xticks(x, losses)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"toy frozen-encoder training: {metric} by batch size")
    handles = [Patch(facecolor="gray", edgecolor="k", alpha=a, label=f"B = {b}") for a, b in zip(alphas, sizes)]
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(sizes))
    ax.grid(alpha=0.3, axis="y")
    return fig
