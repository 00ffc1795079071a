"""Plot helpers, one module per topic (``losses``, ``data``, ``encoders``, ``fusion``, ``training``).

Conventions: every helper takes ``ax=None`` (creates a figure when not given), returns the figure,
never calls ``plt.show()`` and never changes global matplotlib style at import.
"""
