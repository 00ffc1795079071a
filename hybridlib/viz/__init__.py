"""Plot helpers, one module per topic (``losses``, ``data``, ``encoders``, ``fusion``, ``training``).

Conventions: every helper takes ``ax=None`` (creates a figure when not given), returns the figure,
never calls ``plt.show()`` and never changes global matplotlib style at import.
"""


def axes_for(ax, figsize=(6, 3.5)):
    """``(figure, axes)``: the given axes and its figure, or a new figure of ``figsize`` when ``ax`` is None."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax
