"""The tests of the exercise notebooks: one module per exercise, shared helpers in :mod:`.common`.

A notebook's test cell calls ``visible_...`` functions (small fixed examples a student can read and run)
and, inside nbgrader's ``### BEGIN HIDDEN TESTS`` region, ``hidden_...`` functions (the package's
reference on random inputs and hand-made probes). Each check raises :class:`~.common.AnswerError` (an
``AssertionError``, so nbgrader gives the cell zero points) whose message names the mistake, e.g. *your mAP
counts a relevant item outside the top 10*, followed by the smallest input that shows it.
"""

from hybridlib.assignments.checks.common import AnswerError

__all__ = ["AnswerError"]
