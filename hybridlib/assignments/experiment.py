"""Exercise 5: how much of the hybrid gain survives when keywords go missing?

A student trains the content-only baseline and late fusion with open-set keywords on the teaching set, with a
fraction of the clips stripped of their keywords in every split (``TrainConfig.metadata_degradation``,
``remove_metadata``), and reports two numbers for their variant:

* ``GAIN_PP``: hybrid mAP@10 with all keywords minus the baseline's (points);
* ``RETAINED``: the gain left when the variant's fraction of clips lost their keywords, as a fraction of the
  full-metadata gain, ``(hybrid(f) - baseline) / (hybrid(0) - baseline)``.

Both are graded against a **tolerance band computed by the reference run** (:func:`reference_band`): the same
three trainings repeated with ``BAND_SEEDS`` consecutive training seeds starting at the variant's; the band is
the range of the reference's values widened by half of that range on each side, so it contains the value of
every reference seed and its width is the reference's own seed-to-seed spread (nothing is typed in).

CPU budget (measured on a shared 2-core CPU, features cached): one training of the teaching configs with
``EPOCHS`` = 6 takes 5 s on a quiet machine (the configs' 12 epochs: 11 s), plus about 5 s to load the encoders
and read the cached features; a student's curve (baseline + 5 fractions) took 91 s, the reference band
(3 trainings x 3 seeds, computed once per variant and cached in ``<cache>/assignments/``) 75 s. With
``smoke=True`` (the 32/16/16-clip smoke set) a training takes under a second.

:func:`run_training` is the one place where this package calls into training.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hybridlib.util.files import atomic_write_json

BASELINE_CONFIG = "baseline"  # experiments/teaching/baseline.yaml
HYBRID_CONFIG = "hybrid-late"  # experiments/teaching/hybrid-late.yaml (OS keywords, learned missing embedding)
EPOCHS = 6  # CPU budget (the teaching configs' 12 epochs would double it); same for student and reference
FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)  # fractions of clips without keywords the student trains
ASKED = (0.25, 0.5, 0.75)  # the variant picks the fraction its RETAINED answer is about
BAND_SEEDS = 3
METRIC = "t2a_mAP@10"


@dataclass(frozen=True)
class MetadataExperiment:
    """Exercise 5's settings for one variant."""

    variant: int
    seed: int  # training seed of the student's runs (the reference adds BAND_SEEDS - 1 more)
    degradation_seed: int  # which clips lose their keywords
    asked: float  # the fraction RETAINED is asked for
    fractions: tuple = FRACTIONS
    epochs: int = EPOCHS
    smoke: bool = False
    data_root: str | None = None

    def describe(self) -> str:
        return (f"variant {self.variant}: training seed {self.seed}, keyword-removal seed {self.degradation_seed}, "
                f"RETAINED asked at {self.asked:.0%} of clips without keywords, {self.epochs} epochs, "
                f"{'smoke' if self.smoke else 'full'} teaching set")


def experiment_for(variant: int, smoke: bool = False, data_root: str | None = None) -> MetadataExperiment:
    """The exercise-5 settings of a variant seed (see :mod:`hybridlib.assignments.variants`)."""
    rng = random.Random(int(variant))
    return MetadataExperiment(variant=int(variant), seed=int(variant) % 1000,
                              degradation_seed=rng.randrange(1_000_000), asked=ASKED[int(variant) % len(ASKED)],
                              smoke=bool(smoke), data_root=str(data_root) if data_root else None)


def run_training(config: str, seeds, *, smoke: bool, epochs: int, remove_metadata: float = 0.0,
                 degradation_seed: int = 0, data_root: str | None = None) -> dict[int, dict]:
    """Train the teaching config ``config`` once per seed and return ``{seed: evaluation-split metrics}``.

    The one entry point of :mod:`hybridlib.assignments` into training (re-point it here when the training API
    moves). ``remove_metadata``: fraction of clips whose keywords are removed in every split.
    """
    from hybridlib.config import teaching_config
    from hybridlib.experiments import train_seeds

    values = dict(smoke=smoke, epochs=int(epochs), tensorboard=False, data_root=data_root)
    if remove_metadata:
        values["metadata_degradation"] = {"remove_metadata": float(remove_metadata), "seed": int(degradation_seed)}
    cfg = teaching_config(config, **values)
    with tempfile.TemporaryDirectory(prefix="hybrid-assignment-") as out:
        summary = train_seeds(cfg, out, seeds=[int(s) for s in seeds], progress=False, workers=None)
    return {int(seed): metrics for seed, metrics in summary["seeds"].items()}


def train_point(exp: MetadataExperiment, model: str, fraction: float = 0.0, seeds=None) -> float:
    """Test mAP@10 of ``model`` (``"baseline"`` or ``"hybrid"``) with ``fraction`` of the clips stripped of
    their keywords, trained with the experiment's seed (or the mean over ``seeds``)."""
    if model not in ("baseline", "hybrid"):
        raise ValueError(f"model must be 'baseline' or 'hybrid', got {model!r}")
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    seeds = [exp.seed] if seeds is None else list(seeds)
    config = BASELINE_CONFIG if model == "baseline" else HYBRID_CONFIG
    runs = run_training(config, seeds, smoke=exp.smoke, epochs=exp.epochs,
                        remove_metadata=0.0 if model == "baseline" else float(fraction),
                        degradation_seed=exp.degradation_seed, data_root=exp.data_root)
    return sum(r[METRIC] for r in runs.values()) / len(runs)


# ---------------------------------------------------------------------------------------------- reference
def gain_curve(hybrid: dict, baseline: float) -> dict:
    """Hybrid gain over the baseline at each fraction (points): ``{f: hybrid[f] - baseline}``."""
    return {float(f): float(v) - float(baseline) for f, v in hybrid.items()}


def retained_gain(gains: dict, fraction: float) -> float:
    """The gain at ``fraction`` as a fraction of the gain with all keywords, ``gains[f] / gains[0]``."""
    full = float(gains[0.0])
    if full == 0.0:
        raise ValueError("the hybrid model gains nothing over the baseline with all keywords; the retained "
                         "fraction is undefined")
    return float(gains[float(fraction)]) / full


def band_of(values) -> tuple[float, float]:
    """``[min - r/2, max + r/2]`` with ``r = max - min``: the reference values widened by half their spread."""
    lo, hi = min(values), max(values)
    spread = hi - lo
    return lo - spread / 2, hi + spread / 2


def compute_band(exp: MetadataExperiment, n_seeds: int = BAND_SEEDS) -> dict:
    """Train the reference (baseline, hybrid with all keywords, hybrid at ``exp.asked``) with ``n_seeds``
    seeds and return the per-seed answers and their bands."""
    start = time.perf_counter()
    seeds = [exp.seed + i for i in range(n_seeds)]
    common = dict(smoke=exp.smoke, epochs=exp.epochs, degradation_seed=exp.degradation_seed, data_root=exp.data_root)
    baseline = run_training(BASELINE_CONFIG, seeds, **common)
    full = run_training(HYBRID_CONFIG, seeds, **common)
    asked = run_training(HYBRID_CONFIG, seeds, remove_metadata=exp.asked, **common)
    per_seed = {}
    for s in seeds:
        gains = gain_curve({0.0: full[s][METRIC], exp.asked: asked[s][METRIC]}, baseline[s][METRIC])
        per_seed[str(s)] = {"baseline": baseline[s][METRIC], "hybrid_full": full[s][METRIC],
                            "hybrid_asked": asked[s][METRIC], "gain_pp": gains[0.0],
                            "retained": retained_gain(gains, exp.asked) if gains[0.0] != 0 else float("nan")}
    gain_values = [v["gain_pp"] for v in per_seed.values()]
    retained_values = [v["retained"] for v in per_seed.values()]
    return {"experiment": asdict(exp), "seeds": seeds, "per_seed": per_seed,
            "bands": {"gain_pp": band_of(gain_values), "retained": band_of(retained_values)},
            "seconds": round(time.perf_counter() - start, 1)}


def band_path(exp: MetadataExperiment, n_seeds: int = BAND_SEEDS) -> Path:
    from hybridlib.paths import cache_dir

    fields = asdict(exp)
    fields.pop("variant")  # two variants with the same settings share their band
    key = "-".join(f"{k}={v}" for k, v in sorted(fields.items()))
    digest = hashlib.sha256(f"{key}|{n_seeds}|{BASELINE_CONFIG}|{HYBRID_CONFIG}".encode()).hexdigest()[:16]
    return cache_dir() / "assignments" / f"band-{digest}.json"


def reference_band(exp: MetadataExperiment, n_seeds: int = BAND_SEEDS) -> dict:
    """The reference band of ``exp``, from the cache or computed now in a child process.

    The child process (``python -m hybridlib assignments band ...``) keeps the reference runs' output away
    from the calling notebook cell: nbgrader scores a test cell that prints to stderr with zero points.
    """
    path = band_path(exp, n_seeds)
    if not path.is_file():
        cmd = [sys.executable, "-m", "hybridlib", "assignments", "band", "--experiment", json.dumps(asdict(exp)),
               "--seeds", str(n_seeds)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if done.returncode != 0 or not path.is_file():
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"the reference run for {exp.describe()} failed (exit {done.returncode}):\n{tail}")
    return json.loads(path.read_text())


def experiment_from_json(text: str) -> MetadataExperiment:
    values = json.loads(text)
    values["fractions"] = tuple(values.get("fractions", FRACTIONS))
    return MetadataExperiment(**values)


def write_band(exp: MetadataExperiment, n_seeds: int = BAND_SEEDS) -> Path:
    """Compute the band of ``exp`` in this process and store it where :func:`reference_band` looks."""
    band = compute_band(exp, n_seeds)
    return atomic_write_json(band_path(exp, n_seeds), band)
