"""The package's error classes and the exit codes the command line maps them to.

* :class:`UserError` - the input is wrong (a config field, a dataset folder, a file): the message says what
  and how to fix it; the CLI prints ``error: <message>`` and exits with 2.
* :class:`HybridlibError` - the work itself failed (a download, a training run that diverged): one line,
  exit code 1.
* :class:`ReportedElsewhere` - another process of the same run (rank 0 under ``torchrun``) failed and reports
  it; the CLI exits with that failure's code without printing it a second time.

Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class HybridlibError(Exception):
    """A failure the command line reports in one line (``exit_code`` 1)."""

    exit_code = 1


class UserError(HybridlibError, ValueError):
    """Invalid input: a config, a path, a dataset or a file the user gave (``exit_code`` 2)."""

    exit_code = 2


class ReportedElsewhere(HybridlibError):
    """Another process of the same run failed and reports the failure itself (``exit_code``: that failure's)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


# what torch's ``weights_only`` unpickler names when it refuses a pickle; wordings of torch 2.6-2.9
_REFUSED = (
    (r"Unsupported global: GLOBAL (\S+?)\.? was not an allowed global", "it needs {0}, which is not plain data"),
    (r"Trying to load unsupported GLOBAL (\S+?) whose module \S+? is blocked", "it needs {0}, which is not plain data"),
    (r"Trying to call reduce for unrecognized function (.+?)(?: which belongs to .*)?$",
     "it calls {0}, which is not plain data"),
    (r"Can only create new object for nn\.Parameter or classes allowlisted via `add_safe_globals` but got (.+)$",
     "it creates {0}, which is not plain data"),
    (r"(Unsupported operand \S+)", "{0}"),
)


def pickle_refusal(text: str) -> str | None:
    """What ``torch.load(weights_only=True)`` refused, in one sentence (``"it needs posix.system, which is not
    plain data"``), or None when ``text`` is not such a refusal. The refusal comes before anything of the pickle
    runs; torch's advice to load with ``weights_only=False`` (which would run it) is never repeated."""
    import re

    if "Weights only load failed" not in text and "WeightsUnpickler" not in text:
        return None
    for pattern, sentence in _REFUSED:
        found = re.search(pattern, text, re.MULTILINE)
        if found:
            return sentence.format(*(g.strip().rstrip(".") for g in found.groups()))
    return "it holds more than plain data (torch's weights-only reader refused it)"


def one_line(exc: BaseException, limit: int = 200) -> str:
    """A short, single-line account of ``exc`` for an error message that names a file.

    ``torch.load(weights_only=True)`` refusing a pickle says so over a dozen lines (and suggests
    ``weights_only=False``, which would run the code); only what was refused is kept from it
    (:func:`pickle_refusal`), whichever of torch's wordings it used.
    """
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    refused = pickle_refusal(text)
    if refused:
        return f"{type(exc).__name__}: {refused}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__
