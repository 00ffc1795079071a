"""Checks of exercise 5: the gain functions on random inputs and the two answers against the reference band.

Students write ``gain_curve(hybrid, baseline) -> {fraction: gain}`` and ``retained_gain(gains, fraction)``
(the reference is :mod:`hybridlib.assignments.experiment`), run the experiment with ``train_point`` and report
``GAIN_PP`` and ``RETAINED``; :func:`hidden_answers` compares them with :func:`~hybridlib.assignments.experiment.
reference_band` for the student's variant.
"""

from __future__ import annotations

import math
import random

from hybridlib.assignments import experiment as X
from hybridlib.assignments.checks.common import as_number, call, close, fail, passed, reference_blocked

REFERENCES = (
    "hybridlib.assignments.experiment.gain_curve",
    "hybridlib.assignments.experiment.retained_gain",
    "hybridlib.assignments.experiment.compute_band",
    "hybridlib.assignments.experiment.reference_band",
)


def _student(fn, *args):
    with reference_blocked([fn], REFERENCES, "experiment code"):
        return call(fn, *args)


def _random_curve(rng: random.Random):
    fractions = [0.0] + sorted(rng.sample([0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0], rng.randint(1, 4)))
    baseline = rng.uniform(20, 60)
    hybrid = {f: baseline + rng.uniform(2, 10) * (1 - f) + rng.uniform(-1, 1) for f in fractions}
    hybrid[0.0] = max(hybrid[0.0], baseline + 1.0)
    return hybrid, baseline


def visible_gain_functions(gain_curve, retained_gain) -> None:
    gains = _student(gain_curve, {0.0: 52.0, 0.5: 49.0, 1.0: 46.5}, 46.0)
    if not isinstance(gains, dict):
        fail(f"gain_curve must return a dict {{fraction: gain}}, got {type(gains).__name__}")
    expected = {0.0: 6.0, 0.5: 3.0, 1.0: 0.5}
    if set(gains) != set(expected) or not all(close(gains[f], v) for f, v in expected.items()):
        if gains == {0.0: 52.0, 0.5: 49.0, 1.0: 46.5}:
            fail("the gain is the hybrid mAP@10 MINUS the baseline's (in points); you returned the hybrid values")
        fail(f"gain_curve({{0.0: 52.0, 0.5: 49.0, 1.0: 46.5}}, baseline=46.0) should be {expected}, got {gains}")
    value = as_number(_student(retained_gain, expected, 0.5), "retained_gain")
    if not close(value, 0.5):
        fail(f"retained_gain({expected}, 0.5) should be 3.0 / 6.0 = 0.5, got {value}")
    passed("visible gain examples", 2)


def hidden_gain_functions(gain_curve, retained_gain, seed: int = 0) -> None:
    rng = random.Random(int(seed))
    for _ in range(12):
        hybrid, baseline = _random_curve(rng)
        expected = X.gain_curve(hybrid, baseline)
        got = _student(gain_curve, dict(hybrid), baseline)
        if not isinstance(got, dict) or set(map(float, got)) != set(expected):
            fail(f"gain_curve must return one gain per fraction of `hybrid` ({sorted(expected)}), got {got!r}")
        got = {float(f): as_number(v, "a gain") for f, v in got.items()}
        if not all(close(got[f], v) for f, v in expected.items()):
            if all(close(got[f], hybrid[f]) for f in expected):
                fail("the gain is the hybrid mAP@10 MINUS the baseline's (in points); you returned the hybrid values")
            if all(close(got[f], -v) for f, v in expected.items()):
                fail("the gain is hybrid minus baseline, not baseline minus hybrid")
            fail(f"gain_curve({hybrid}, {baseline}) should be {expected}, got {got}")
        for fraction in expected:
            value = as_number(_student(retained_gain, dict(expected), fraction), "retained_gain")
            ref = X.retained_gain(expected, fraction)
            if close(value, ref, atol=1e-9):
                continue
            if close(value, 100 * ref, atol=1e-7):
                fail("return the retained gain as a fraction (1.0 = all of it), not in percent")
            if close(value, 1 / ref if ref else math.inf, atol=1e-7):
                fail("the retained gain is gain(fraction) / gain(0), not the inverse")
            if close(value, 1 - ref, atol=1e-9):
                fail("return the part of the gain that is RETAINED (gain(f) / gain(0)), not the part lost")
            fail(f"retained_gain({expected}, {fraction}) should be {ref}, got {value}")
    passed("gain functions on random curves", 12)


def visible_answers(gain_pp, retained) -> None:
    for name, value in (("GAIN_PP", gain_pp), ("RETAINED", retained)):
        number = as_number(value, name)
        if not math.isfinite(number):
            fail(f"{name} must be a finite number, got {number}")
    passed("answers are numbers", 2)


def _inside(value: float, band) -> bool:
    lo, hi = band
    slack = 1e-9 * max(1.0, abs(lo), abs(hi))
    return lo - slack <= value <= hi + slack


def hidden_answer(name: str, value, exp: X.MetadataExperiment) -> None:
    """``name`` is ``"gain_pp"`` (GAIN_PP) or ``"retained"`` (RETAINED)."""
    label = {"gain_pp": "GAIN_PP", "retained": "RETAINED"}[name]
    number = as_number(value, label)
    ref = X.reference_band(exp)
    band = ref["bands"][name]
    if not _inside(number, band):
        values = ", ".join(f"{v[name]:.3f}" for v in ref["per_seed"].values())
        fail(f"{label} = {number:.4f} lies outside [{band[0]:.4f}, {band[1]:.4f}], the band the reference run gives for "
             f"your variant ({exp.describe()}; reference values over seeds {ref['seeds']}: {values}). Train with "
             "train_point(EXP, ...) and compute the answer from your own runs")
    passed(f"{label} inside the reference band", 1)
