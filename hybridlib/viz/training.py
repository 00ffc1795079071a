"""Plots for training and results: curves, LR schedules, bars with seed spread, paper vs ours, rank histograms.

Every helper takes ``ax=None`` (a new figure when not given) and returns the figure.
"""

from __future__ import annotations

from collections.abc import Mapping

from hybridlib.viz import axes_for, pretty_metric, wrap_label

__all__ = ["plot_findings", "plot_lr_schedule", "plot_metadata_sweep", "plot_paper_vs_ours", "plot_rank_histogram",
           "plot_seed_bars", "plot_training_curves", "pretty_metric"]


def plot_training_curves(curves, metric: str | None = "val_t2a_mAP@10", ax=None, title: str | None = None,
                         ylabel: str | None = None, colors: Mapping[str, str] | None = None):
    """One line per run over epochs: the one curve plot of the package.

    ``curves``: a run's ``log.csv`` DataFrame, or ``{label: curve}`` where a curve is a DataFrame with an
    ``epoch`` column and a ``metric`` column, a list of such DataFrames (several seeds: their mean with a
    min-max band), or a plain sequence of per-epoch values (``metric`` is then only the axis label).
    """
    import pandas as pd

    fig, ax = axes_for(ax)
    if isinstance(curves, pd.DataFrame):
        curves = {"run": curves}
    for label, curve in curves.items():
        if isinstance(curve, pd.DataFrame) or (isinstance(curve, (list, tuple)) and curve
                                               and isinstance(curve[0], pd.DataFrame)):
            parts = curve if isinstance(curve, (list, tuple)) else [curve]
            table = pd.concat([p.groupby("epoch")[metric].mean().rename(i) for i, p in enumerate(parts)], axis=1)
        else:
            table = pd.DataFrame({0: list(curve)}, index=range(1, len(curve) + 1))
        mean = table.mean(axis=1)
        color = (colors or {}).get(label)
        (line,) = ax.plot(mean.index, mean.values, marker="o", ms=3, label=label, color=color)
        if table.shape[1] > 1:
            ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=line.get_color(), alpha=0.2)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, no 1.25 ticks
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or pretty_metric(metric or ""))
    ax.set_title(title or pretty_metric(metric or ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_lr_schedule(cfg, steps_per_epoch: int, ax=None, label: str | None = None):
    """The learning rate of every optimiser step under ``cfg``'s schedule (uses the real scheduler)."""
    import torch

    from hybridlib.training.optim import build_scheduler

    fig, ax = axes_for(ax)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=cfg.lr)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    lrs = []
    for _ in range(cfg.epochs * steps_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    epochs = [i / steps_per_epoch for i in range(len(lrs))]
    ax.plot(epochs, lrs, label=label or cfg.schedule)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_seed_bars(results: Mapping[str, Mapping], metric: str = "t2a_mAP@10", ax=None, paper: Mapping | None = None,
                   title: str | None = None):
    """Bars of the mean over seeds with a std error bar and one dot per seed.

    ``results``: ``{label: aggregate}`` where ``aggregate[metric]`` is ``{"mean", "std", "values"}`` (as in
    ``metrics.json``). ``paper``: optional ``{label: value}`` drawn as black ticks for reference.
    """
    labels = list(results)
    multiline = any("\n" in str(label) for label in labels)
    fig, ax = axes_for(ax, figsize=(max(4.0, (1.3 if multiline else 1.1) * len(results) + 2), 3.8))
    for i, label in enumerate(labels):
        agg = results[label][metric]
        ax.bar(i, agg["mean"], yerr=agg.get("std", 0.0), capsize=4, color=f"C{i % 10}", alpha=0.75)
        vals = agg.get("values", [])
        ax.scatter([i + (k - (len(vals) - 1) / 2) * 0.08 for k in range(len(vals))], vals, color="k", s=10,
                   zorder=3)
        if paper and label in paper and paper[label] is not None:
            ax.hlines(paper[label], i - 0.4, i + 0.4, colors="k", linestyles="--", lw=1.2)
    ax.set_xticks(range(len(labels)))
    # labels with a line break (``"loss\nbs 24"``) stand upright and centred; single-line ones slant
    ax.set_xticklabels(labels, rotation=0 if multiline else 25, ha="center" if multiline else "right",
                       fontsize=8 if multiline else None)
    ax.set_ylabel(pretty_metric(metric))
    ax.set_title(title or f"{pretty_metric(metric)}: mean ± std over seeds\n(dots: seeds"
                 + (", dashes: paper)" if paper else ")"))
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_paper_vs_ours(comparison, ax=None, title: str = "paper vs ours"):
    """Grouped bars from :func:`hybridlib.paper.compare` (one group per row/metric: paper, ours ± std)."""
    import numpy as np

    fig, ax = axes_for(ax, figsize=(max(5, 0.9 * len(comparison) + 2), 3.8))
    x = np.arange(len(comparison))
    ax.bar(x - 0.2, comparison["paper"], width=0.4, label="paper", color="0.6")
    std = comparison["ours_std"].fillna(0.0) if "ours_std" in comparison else None
    ax.bar(x + 0.2, comparison["ours"], width=0.4, yerr=std, capsize=3, label="ours (teaching set, CPU)", color="C0")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r.split('/')[-1]}\n{m}" for r, m in zip(comparison["row"], comparison["metric"])],
                       fontsize=8)
    ax.set_ylabel("percent")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_rank_histogram(ranks: Mapping[str, object], max_rank: int = 50, ax=None):
    """Histogram of the rank of each caption's own clip (1 = retrieved first), one step line per model."""
    import numpy as np

    fig, ax = axes_for(ax)
    bins = np.arange(1, max_rank + 2)
    for label, r in ranks.items():
        r = np.asarray(r)
        ax.hist(np.clip(r, 1, max_rank), bins=bins, histtype="step", lw=1.5,
                label=f"{label} (median {np.median(r):.0f})")
    ax.set_xlabel(f"rank of the correct clip (clipped at {max_rank})")
    ax.set_ylabel("captions")
    ax.legend(fontsize=8)
    return fig


def plot_findings(findings, ax=None, title: str = "paper gap vs our gap"):
    """Horizontal bars of each finding's gap in the paper and ours (± spread) from
    :func:`hybridlib.paper.check_findings`; a finding holds when our bar points the same way."""
    import numpy as np

    labels = [wrap_label(f"{c}{' ✓' if h else ' ✗'}", 48) for c, h in zip(findings["claim"], findings["holds"])]
    lines = sum(label.count("\n") + 1 for label in labels)
    fig, ax = axes_for(ax, figsize=(10, 0.36 * lines + 0.45 * len(findings) + 1.2))
    y = np.arange(len(findings))
    paper_gap = findings["paper_gap"].astype(float).fillna(0.0)
    ours = findings["our_gap"].astype(float)
    err = findings["our_gap_std"].astype(float).fillna(0.0) if "our_gap_std" in findings else None
    ax.barh(y + 0.2, paper_gap, height=0.4, color="0.6", label="paper")
    ax.barh(y - 0.2, ours, height=0.4, xerr=err, capsize=3, color="C0", label="ours")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)  # whole claims, wrapped (bbox_inches="tight" keeps them in the figure)
    ax.invert_yaxis()
    ax.set_xlabel("gap in points (better - worse)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_metadata_sweep(rows, baseline: float | None = None, metric: str = "t2a_mAP@10", ax=None,
                        title: str | None = None):
    """Metric against a metadata-degradation knob, one line per ``missing_metadata`` policy (rows of
    :func:`hybridlib.experiments.metadata_sweep`), with the content-only baseline as a dashed line."""
    fig, ax = axes_for(ax, (6, 3.5))
    knobs = sorted({r["knob"] for r in rows})
    for policy in sorted({r["missing_metadata"] for r in rows}):
        pts = sorted((r["value"], r[f"{metric}_mean"], r[f"{metric}_std"]) for r in rows
                     if r["missing_metadata"] == policy)
        xs, ys, es = zip(*pts)
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=f"hybrid late, missing metadata: {policy}")
    if baseline is not None:
        ax.axhline(baseline, color="0.3", ls="--", lw=1, label="content-only baseline")
    ax.set_xlabel(" / ".join(k.replace("_", " ") for k in knobs) + " (fraction, every split)")
    ax.set_ylabel(pretty_metric(metric))
    ax.set_title(title or f"{pretty_metric(metric)} as metadata degrades")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
