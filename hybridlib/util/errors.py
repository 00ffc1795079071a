"""The package's error classes and the exit codes the command line maps them to.

* :class:`UserError` - the input is wrong (a config field, a dataset folder, a file): the message says what
  and how to fix it; the CLI prints ``error: <message>`` and exits with 2.
* :class:`HybridlibError` - the work itself failed (a download, a training run that diverged): one line,
  exit code 1.

Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class HybridlibError(Exception):
    """A failure the command line reports in one line (``exit_code`` 1)."""

    exit_code = 1


class UserError(HybridlibError, ValueError):
    """Invalid input: a config, a path, a dataset or a file the user gave (``exit_code`` 2)."""

    exit_code = 2
