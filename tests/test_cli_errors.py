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
    # values are read as plain YAML: a tag never constructs anything (the payload would write into {tmp}/data,
    # which must stay empty), broken YAML and a wrong entry of a mapping field are one line each
    ("set-python-tag", ["train", "--config", TEACHING, "--set",
                        'name=!!python/object/apply:os.system ["touch {tmp}/data/pwned"]'],
     "--set name=!!python/object/apply:os.system [\"touch"),
    ("set-python-tag-refused", ["train", "--config", TEACHING, "--set", "name=!!python/name:os.system"],
     "the tag !!python/name:os.system (line 1, column 1) is refused: only plain values are read"),
    ("set-binary-tag", ["train", "--config", TEACHING, "--set", "name=!!binary aGVsbG8="], "the tag !!binary"),
    ("set-set-tag", ["train", "--config", TEACHING, "--set", "seeds=!!set {{1, 2}}"], "the tag !!set"),
    ("set-custom-tag", ["train", "--config", TEACHING, "--set", "name=!foo bar"], "the tag !foo"),
    ("set-nested-tag", ["reproduce", "mei-table-2", "--set", "loss_kwargs={{margin: !!python/name:os.system x}}"],
     "the tag !!python/name:os.system (line 1, column 10) is refused"),
    ("set-broken-yaml", ["train", "--config", TEACHING, "--set", "lr=[1"],
     "--set lr=[1: not valid YAML (while parsing a flow sequence: expected ',' or ']'"),
    ("set-metadata-kind", ["train", "--config", TEACHING, "--set", "metadata_by_dataset={{teaching: 5}}"],
     "field 'metadata_by_dataset' must map training datasets to a metadata kind (os, cs, fs): 'teaching': 5 is not"),
    ("set-metadata-kind-clotho", ["train", "--config", "experiments/clotho-cpu/late-os.yaml", "--set",
                                  "metadata_by_dataset={{clotho: 5}}"], "'clotho': 5 is not a metadata kind"),
    ("set-metadata-other-dataset", ["train", "--config", TEACHING, "--set", "metadata_by_dataset={{clotho: os}}"],
     "key 'clotho' is not a training dataset of this config (teaching)"),
    ("set-epochs-exponent", ["train", "--config", TEACHING, "--set", "epochs=1e2"],
     "field 'epochs' must be a positive integer; write 100"),
    ("set-lr-negative-exponent", ["train", "--config", TEACHING, "--set", "lr=-1e-4"],
     "field 'lr' must be a positive number (got -0.0001)"),
    ("set-long-value-shortened", ["train", "--config", TEACHING, "--set", "schedule=" + "x" * 100_000],
     "(got 'xxxxxxxx"),
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
    assert len(errors[0]) < 1000, errors[0][:2000]  # a long value is echoed shortened
    made = sorted(p.name for p in data.iterdir())
    assert made == [], made  # nothing downloaded or generated (weights, teaching set) before the inputs were checked
    assert not (tmp_path / "course").exists()  # nor a course built before its roster was found
    assert not (tmp_path / "runs").exists() and not (tmp_path / "r").exists()  # no row trained, no rehearsal begun


@pytest.mark.slow
@pytest.mark.parametrize("args", [["search", "--run", "{tmp}", b"dog \xff\xfe"],
                                  ["train", "--config", TEACHING, "--set", b"name=\xe9t\xe9"]],
                         ids=["search-query", "set-value"])
def test_arguments_that_are_not_utf8_are_one_line_exit_2(args, tmp_path):
    """Bytes that are not UTF-8 (a Latin-1 terminal, a byte typed with $'\\xff') arrive as lone surrogates."""
    args = [a.format(tmp=tmp_path) if isinstance(a, str) else a for a in args]
    env = {**os.environ, "HYBRIDLIB_DATA": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "hybridlib", *args], cwd=ROOT, env=env, capture_output=True,
                            timeout=300)
    stderr = result.stderr.decode("utf-8")
    assert result.returncode == 2 and "Traceback" not in stderr, stderr[-2000:]
    assert stderr.startswith("error: the argument ") and stderr.count("\n") == 1, stderr
    assert "is not UTF-8 text (bytes b'\\x" in stderr and "type it in UTF-8" in stderr
    assert not (tmp_path / "data").exists()
