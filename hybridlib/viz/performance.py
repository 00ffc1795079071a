"""Plots for notebook 09 (GPU training): input pipeline against model throughput, precisions, memory by batch.

Every helper takes ``ax=None`` (a new figure when not given) and returns the figure.
"""

from __future__ import annotations

from hybridlib.viz import axes_for

__all__ = ["plot_memory_by_batch", "plot_precisions", "plot_throughput"]


def plot_throughput(pipeline: list[dict], model_clips_per_second: float, ax=None):
    """Bars: clips per second the input pipeline delivers for each worker count (rows of
    :func:`hybridlib.training.performance.input_pipeline_rate`); a line: what the model consumes."""
    fig, ax = axes_for(ax)
    labels = [f"{r['num_workers']} workers" for r in pipeline]
    ax.bar(labels, [r["clips_per_second"] for r in pipeline], color="tab:blue", label="input pipeline")
    ax.axhline(model_clips_per_second, color="tab:red", ls="--", label="model (training steps)")
    ax.set_ylabel("clips per second")
    ax.set_title("who limits: input pipeline vs model")
    ax.legend(fontsize=8)
    return fig


def plot_precisions(rows: list[dict], ax=None):
    """Bars: training steps per second under each precision (rows of
    :func:`hybridlib.training.performance.compare_precisions`), the peak memory written on each bar."""
    fig, ax = axes_for(ax)
    bars = ax.bar([r["precision"] for r in rows], [r["steps_per_second"] for r in rows], color="tab:green")
    for bar, r in zip(bars, rows):
        ax.annotate(f"{r['peak_memory_mb']:.0f} MB", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("training steps per second")
    ax.set_title("mixed precision (peak memory on the bars)")
    return fig


def plot_memory_by_batch(batches: list[int], estimates_gb: dict[str, list[float]], cards_gb=(), ax=None):
    """Lines: estimated training memory (GB) over the batch size for each model (``{label: [GB per batch]}``);
    dotted lines: the cards' memory."""
    fig, ax = axes_for(ax)
    for label, values in estimates_gb.items():
        ax.plot(batches, values, marker="o", ms=3, label=label)
    for card in cards_gb:
        ax.axhline(card, color="grey", ls=":", lw=1)
        ax.annotate(f"{card:g} GB card", (batches[0], card), fontsize=7, va="bottom", color="grey")
    ax.set_xlabel("batch size")
    ax.set_ylabel("estimated memory (GB)")
    ax.set_title("what fits on a card (hybridlib.gpu_plan)")
    ax.legend(fontsize=8)
    return fig
