"""Every command's error path, as a user meets it: ``python -m hybridlib ...`` in a subprocess with a wrong
input ends in one ``error: ...`` line saying what is wrong (and what to do), exit code 2, no traceback, and
nothing is downloaded or trained before the inputs are checked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hybridlib.paths import project_root

ROOT = project_root()
CUDA = False
try:
    import torch

    CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    pass

GPU_CONFIG = "experiments/hybrid/clotho-late-os.yaml"
TEACHING = "experiments/teaching/baseline.yaml"

# (id, arguments, text the error line must contain); {tmp} is an empty folder, {bad_params} a parameter
# file with a misspelt name
CASES = [
    ("download-weights-without-name", ["download", "weights"], "needs a NAME, one of efficientat-mn10"),
    ("download-clotho-with-name", ["download", "clotho", "panns-cnn14"], "takes no NAME"),
    ("extract-missing-folder", ["extract", "--data", "{tmp}/nope", "--no-progress"], "no such folder"),
    ("extract-folder-without-dataset", ["extract", "--data", "{tmp}", "--no-progress"], "No Clotho captions"),
    ("extract-bad-split", ["extract", "--data", "{tmp}", "--splits", "nope"], "unknown clotho split 'nope'"),
    ("extract-bad-backbone", ["extract", "--smoke", "--backbone", "nope", "--splits", "evaluation", "--no-progress"],
     "unknown audio backbone 'nope'"),
    ("train-missing-config", ["train", "--config", "{tmp}/nope.yaml"], "config file not found"),
    ("train-bad-value", ["train", "--config", TEACHING, "--set", "epochs=abc"], "field 'epochs' must be"),
    ("train-bad-model-section", ["train", "--config", TEACHING, "--set", "model.fusion=nope"],
     "ModelConfig.fusion must be one of"),
    ("train-dataset-missing", ["train", "--config", GPU_CONFIG, "--set", "device=cpu", "--no-progress"],
     "No Clotho captions"),
    ("evaluate-no-run", ["evaluate", "--run", "{tmp}"], "holds no trained seed"),
    ("evaluate-missing-folder", ["evaluate", "--run", "{tmp}/nope"], "no such folder"),
    ("teaching-set-bad-bank", ["make-teaching-set", "--bank", "{tmp}/nope", "--out", "{tmp}/t"],
     "expected 'procedural' or a folder holding manifest.csv"),
    ("teaching-set-no-clips", ["make-teaching-set", "--clips", "0", "0", "0", "--out", "{tmp}/t"],
     "n_clips must be three positive counts"),
    ("run-notebooks-unknown-notebook", ["run-notebooks", "--only", "99"], "no notebook matches 99"),
    ("run-notebooks-missing-params", ["run-notebooks", "--params", "{tmp}/nope.yaml"], "parameter file not found"),
    ("run-notebooks-misspelt-parameter", ["run-notebooks", "--params", "{bad_params}"],
     "unknown parameter EPOCH (did you mean EPOCHS?)"),
    ("format-notebooks-missing", ["format-notebooks", "{tmp}/nope.ipynb"], "no such notebook or folder"),
    ("results-table-missing-run", ["results-table", "{tmp}/nope"], "no such folder"),
    ("assignments-build-missing-roster", ["assignments", "build", "--course", "{tmp}/course", "--roster",
                                          "{tmp}/nope.csv"], "--roster"),
    ("assignments-scores-no-gradebook", ["assignments", "scores", "--course", "{tmp}"], "no gradebook in"),
    ("assignments-band-nothing-given", ["assignments", "band"], "give --experiment JSON or --roster CSV"),
    ("reproduce-unknown-row", ["reproduce", "mei-table-2", "--rows", "nope", "--list"], "rows ['nope'] are not in"),
    ("reproduce-bad-shard", ["reproduce", "mei-table-2", "--shard", "3/2"], "--shard 3/2: i must lie in 1..n"),
    ("reproduce-bad-override", ["reproduce", "mei-table-2", "--set", "epochs=abc"], "field 'epochs' must be"),
    ("reproduce-not-a-rehearsal", ["reproduce", "mei-table-2", "--rehearsal", "{tmp}"], "is not a rehearsal folder"),
    ("reproduce-dataset-missing", ["reproduce", "mei-table-2", "--set", "device=cpu", "--out", "{tmp}/runs"],
     "No AudioCaps"),
    ("make-rehearsal-no-shared-data", ["make-rehearsal", "--shared", "{tmp}/nope", "--out", "{tmp}/r"],
     "rehearsal source missing"),
]
if not CUDA:
    CASES += [
        ("train-gpu-config-on-cpu", ["train", "--config", GPU_CONFIG], "a GPU config"),
        ("train-cuda-device", ["train", "--config", TEACHING, "--set", "device=cuda"], "no CUDA device"),
        ("extract-cuda-device", ["extract", "--device", "cuda"], "no CUDA device"),
        ("evaluate-cuda-device", ["evaluate", "--run", "{tmp}", "--device", "cuda"], "no CUDA device"),
        ("reproduce-gpu-rows-on-cpu", ["reproduce", "mei-table-1", "--rows", "mei-clotho-finetune-nt-xent", "--out",
                                       "{tmp}/runs"], "a GPU config"),
    ]


def run_cli(args, env):
    return subprocess.run([sys.executable, "-m", "hybridlib", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("args, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_is_one_line_exit_2(args, expected, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    bad_params = tmp_path / "params.yaml"
    bad_params.write_text("06:\n  EPOCH: 3\n")
    args = [a.format(tmp=tmp_path, bad_params=bad_params) for a in args]
    env = {**os.environ, "HYBRIDLIB_DATA": str(data), "HYBRIDLIB_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(ROOT)}
    result = run_cli(args, env)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], lines
    made = sorted(p.name for p in data.iterdir())
    assert made == [], made  # nothing downloaded or generated (weights, teaching set) before the inputs were checked
    assert not (tmp_path / "course").exists()  # nor a course built before its roster was found
    assert not (tmp_path / "runs").exists() and not (tmp_path / "r").exists()  # no row trained, no rehearsal begun
