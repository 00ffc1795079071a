"""Plot helpers, one module per topic (``losses``, ``data``, ``encoders``, ``fusion``, ``training``).

Conventions: every helper takes ``ax=None`` (creates a figure when not given), returns the figure,
never calls ``plt.show()`` and never changes global matplotlib style at import. Text that may come from a
dataset (titles, tick and event labels: captions, keywords, file names) is drawn as typed: a ``$`` is a dollar
sign, never matplotlib's mathtext (:func:`hybridlib.util.markup.escape_mathtext`).
"""


def axes_for(ax, figsize=(6, 3.5)):
    """``(figure, axes)``: the given axes and its figure, or a new figure of ``figsize`` when ``ax`` is None."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


METRIC_WORDS = {"val": "validation", "t2a": "text-to-audio", "a2t": "audio-to-text", "train": "training"}


def pretty_metric(name: str) -> str:
    """Axis label for a metric column: ``val_t2a_mAP@10`` -> ``validation text-to-audio mAP@10 (%)``."""
    label = " ".join(METRIC_WORDS.get(p, p) for p in name.split("_"))
    return label + (" (%)" if any(m in name for m in ("mAP", "R@", "R-sum")) and "%" not in name else "")


def wrap_label(text: str, width: int = 40) -> str:
    """``text`` broken at spaces into lines of at most ``width`` characters (tick labels that fit)."""
    import textwrap

    return "\n".join(textwrap.wrap(str(text), width)) or str(text)
