"""Course assignments: the exercise series in ``notebooks/exercises/`` in nbgrader's format.

An instructor builds, releases, collects and autogrades the series with nbgrader itself (see the README's
instructor guide); this package holds everything the notebooks and the instructor need besides nbgrader:

* :mod:`hybridlib.assignments.variants` - one variant seed per student (papermill injects it into personal
  copies; during ``nbgrader autograde`` the submitter's seed is used);
* :mod:`hybridlib.assignments.checks` - the visible and hidden tests the notebooks call: they compare a
  student's function with the package's reference (:mod:`hybridlib.metrics`, :mod:`hybridlib.losses`,
  :mod:`hybridlib.models.pooling`, :mod:`hybridlib.models.fusion`) on hand-made probes and random inputs, and
  fail with a message that says what to fix;
* :mod:`hybridlib.assignments.experiment` - exercise 5's short training runs (the one entry point into
  training) and the reference tolerance band its answer is graded against;
* :mod:`hybridlib.assignments.research` - the reference measurements of exercise 6;
* :mod:`hybridlib.assignments.course` - an nbgrader course folder: source, ``generate_assignment``, personal
  copies, submissions, ``autograde``, ``generate_feedback``, ``export`` and the gradebook's scores;
* the command line: ``python -m hybridlib assignments build | check | scores | band`` (:mod:`hybridlib.cli.assignments`).
"""
