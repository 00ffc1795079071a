"""Run folders are never silently mixed or half written: a used folder, two writers, a seed no generator takes, a
full disk. Each case runs the command a user runs (in-process ``main`` or a real subprocess) on the smoke
teaching set."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybridlib import runs
from hybridlib.cli import main
from hybridlib.config import experiments_dir
from hybridlib.util.files import DiskFull, atomic_write_text, check_free_space
from hybridlib.util.locks import LOCK_NAME, FolderLocked, folder_lock

CONFIG = str(experiments_dir() / "teaching" / "hybrid-late.yaml")
ROOT = Path(__file__).resolve().parents[1]
BIG_SEED = str(2**70)


def _train_args(out, *extra, epochs=1):
    return ["train", "--config", CONFIG, "--smoke", "--out", str(out), "--seed", "0", "--set", f"epochs={epochs}",
            "--set", "tensorboard=false", "--no-progress", *extra]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _cli(args, limit: int | None = None, env: dict | None = None, **kw) -> subprocess.Popen:
    """``python -m hybridlib ARGS`` in a subprocess of this worktree (with a file size limit: writes beyond
    ``limit`` bytes fail with EFBIG, SIGXFSZ ignored)."""
    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "hybridlib", *args], cwd=ROOT, env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=limited if limit else None, **kw)


def _run(args, **kw) -> tuple[int, str, str]:
    proc = _cli(args, **kw)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if p.name.endswith(".tmp") or p.name == LOCK_NAME]


# ------------------------------------------------------------------------------------------- a used run folder
@pytest.mark.slow
def test_train_into_a_used_run_folder_is_refused_unless_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train_args(out)) == 0
    seed = out / "seed-0"
    before = {p: p.read_bytes() for p in seed.rglob("*") if p.is_file()}
    # finished: replacing best/, config.yaml and the metrics needs --overwrite
    assert main(_train_args(out, "--set", "lr=0.002")) == 2
    err = _error_line(capsys)
    assert f"{seed} already holds a finished run" in err and "--resume" in err and "--overwrite" in err
    assert {p: p.read_bytes() for p in seed.rglob("*") if p.is_file()} == before
    # --resume of a finished run changes nothing
    assert main(_train_args(out, "--resume")) == 0
    metrics = json.loads(before[seed / "metrics-evaluation.json"])
    assert runs.read_metrics(seed, "evaluation")["metrics"] == metrics["metrics"]
    assert (seed / "best" / "model.safetensors").read_bytes() == before[seed / "best" / "model.safetensors"]
    # --overwrite replaces it: one config everywhere, nothing of the first run left beside it
    assert main(_train_args(out, "--set", "lr=0.002", "--overwrite")) == 0
    assert runs.read_config(seed).lr == 0.002
    assert json.loads((seed / "best" / "train_config.json").read_text())["lr"] == 0.002
    assert json.loads(runs.metrics_path(out, "evaluation").read_text())["seeds_run"] == [0]
    # an interrupted run is not restarted from scratch either
    part = tmp_path / "part"
    assert main(_train_args(part, "--set", "stop_after_epoch=1", epochs=2)) == 0
    capsys.readouterr()
    assert main(_train_args(part, epochs=2)) == 2
    assert f"{part / 'seed-0'} already holds an interrupted run after epoch 1" in _error_line(capsys)
    assert main(_train_args(part, "--resume", epochs=2)) == 0


@pytest.mark.slow
def test_another_config_in_the_run_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train_args(out)) == 0
    args = ["train", "--config", CONFIG, "--smoke", "--out", str(out), "--seed", "1", "--set", "epochs=1",
            "--set", "tensorboard=false", "--set", "lr=0.003", "--no-progress"]
    assert main(args) == 2
    err = _error_line(capsys)
    assert f"{out / 'seed-0'} holds a run of another config (lr)" in err and "--overwrite" in err
    assert not (out / "seed-1").exists()
    assert main([*args, "--overwrite"]) == 0  # removes seed-0 (another config) and trains seed 1
    assert not (out / "seed-0").exists()
    assert json.loads(runs.metrics_path(out, "evaluation").read_text())["seeds_run"] == [1]


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(_train_args(tmp_path / "run", "--resume", "--overwrite"))
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- the lock
@pytest.mark.slow
def test_two_trainings_into_one_out_at_once_one_is_refused(tmp_path):
    """Two real ``train`` processes started together into one --out (lr 0.001 and 0.002): exactly one trains,
    the other exits 2 with one line, and the folder holds one run (config, best model and metrics agree)."""
    out = tmp_path / "run"
    procs = [_cli(_train_args(out, "--set", f"lr={lr}", epochs=2)) for lr in ("0.001", "0.002")]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[0] == 2)
    lines = loser[2].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and (
        "is being written by another process (pid " in lines[0] or "already holds a" in lines[0]), loser
    seed = out / "seed-0"
    lr = runs.read_config(seed).lr
    assert json.loads((seed / "best" / "train_config.json").read_text())["lr"] == lr
    assert runs.read_checkpoint_file(seed / runs.CHECKPOINT)["config"]["lr"] == lr
    assert not _leftovers(out)


@pytest.mark.slow
def test_a_live_writer_is_named_and_a_dead_ones_lock_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    script = ("import sys, time\nfrom hybridlib.util.locks import folder_lock\n"
              f"with folder_lock({str(out)!r}, 'the test holder'):\n    print('held', flush=True)\n"
              "    sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(_train_args(out)) == 2
        err = _error_line(capsys)
        assert f"{out} is being written by another process (pid {holder.pid} " in err and "the test holder" in err
        assert not (out / "seed-0").exists()
        with pytest.raises(FolderLocked):
            with folder_lock(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    # the holder died (kill -9) and left its lock file: the next writer takes it over
    assert (out / LOCK_NAME).is_file()
    assert main(_train_args(out)) == 0
    capsys.readouterr()
    # evaluate takes the same lock: a live holder stops it, a dead one's lock file does not
    (out / "seed-0" / LOCK_NAME).write_text("pid 999999 on nowhere: train, since 2026-01-01 00:00:00\n")
    assert main(["evaluate", "--run", str(out), "--no-progress"]) == 0
    assert not _leftovers(out)


def test_the_lock_is_reentrant_and_removes_what_it_created(tmp_path):
    folder = tmp_path / "new"
    with folder_lock(folder, "outer"):
        with folder_lock(folder):  # the command line locks, then the training it calls
            assert "outer" in (folder / LOCK_NAME).read_text()
        assert (folder / LOCK_NAME).is_file()
    assert not folder.exists()  # created by the lock and left empty: removed
    (tmp_path / "kept").mkdir()
    with folder_lock(tmp_path / "kept"):
        pass
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())


# ------------------------------------------------------------------------------------------- seeds
def test_a_seed_beyond_the_generators_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", CONFIG, "--smoke", "--out", str(out), "--seed", BIG_SEED, "--no-progress"]) == 2
    assert f"--seed {BIG_SEED} must be a non-negative integer up to 4294967295" in _error_line(capsys)
    assert not out.exists()
    assert main(["train", "--config", CONFIG, "--smoke", "--out", str(out), "--set", f"seed={BIG_SEED}"]) == 2
    assert "field 'seed' must be a non-negative integer up to 4294967295" in _error_line(capsys)
    assert main(["train", "--config", CONFIG, "--smoke", "--out", str(out), "--set", f"seeds=[0, {BIG_SEED}]"]) == 2
    assert "field 'seeds' item 1 must be a non-negative integer up to 4294967295" in _error_line(capsys)
    assert not out.exists()
    reproduce = tmp_path / "reproduce"
    assert main(["reproduce", "hybrid-table-1", "--seeds", "0", BIG_SEED, "--out", str(reproduce)]) == 2
    assert f"--seeds: {BIG_SEED} must be a non-negative integer up to 4294967295" in _error_line(capsys)
    assert not reproduce.exists()


def test_a_notebook_seed_beyond_the_generators_is_refused():
    from hybridlib.notebook_parameters import ParameterError, check_parameter_values

    with pytest.raises(ParameterError, match=r"^SEED: must be a non-negative integer up to 4294967295"):
        check_parameter_values({"SEED": 2**70})


# ------------------------------------------------------------------------------------------- a full disk
@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left"), (errno.EDQUOT, "quota"),
                                         (errno.EFBIG, "file size limit")])
def test_a_full_disk_at_the_write_layer_names_the_file_and_the_space(tmp_path, monkeypatch, code, words):
    """The failure injected where every writer writes (``Path.write_bytes`` inside ``atomic_path``)."""
    target = tmp_path / "sub" / "report.json"

    def full(self, data):
        with open(self, "wb") as f:
            f.write(data[:10])  # part of it reached the disk
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(DiskFull) as info:
        atomic_write_text(target, "x" * 5000)
    message = str(info.value)
    assert message.startswith(f"cannot write {target}: ") and words in message and "about 5.0 kB" in message
    assert "free there" in message and "\n" not in message
    assert not target.exists() and list(target.parent.iterdir()) == []  # no temporary file left


def test_a_safetensors_or_torch_write_on_a_full_disk_is_disk_full(tmp_path, monkeypatch):
    """safetensors reports the errno in its message, torch's zip writer as the context of its own error."""
    import torch

    from hybridlib.features.cache import save_tensors

    def failing_save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        from safetensors import SafetensorError
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("safetensors.torch.save_file", failing_save_file)
    entry = tmp_path / "clip.safetensors"
    with pytest.raises(DiskFull, match=r"cannot write .*clip.safetensors: no space left on the device \(it needs "
                                       r"about 4\.\d kB"):
        save_tensors({"frames": torch.zeros(1000)}, entry, {})
    assert list(tmp_path.iterdir()) == []

    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr("builtins.open", lambda *a, **k: Full(real_open(*a, **k)))
    with pytest.raises(DiskFull, match=r"checkpoint\.pt: no space left on the device \(it needs about 40\.0 kB"):
        runs.save_checkpoint(tmp_path, {"epoch": 1, "w": torch.zeros(10000)})
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_the_free_space_check_says_how_much_is_needed(tmp_path):
    with pytest.raises(DiskFull, match=r"^not enough space in .*: training \(x\) needs about 1000000\.0 GB, "
                                       r"[\d.]+ [kMG]?B is free"):
        check_free_space(tmp_path, 10**15, "training (x)")
    check_free_space(tmp_path, 1, "a byte")


@pytest.mark.slow
def test_disk_full_during_extract_and_train_then_a_rerun_with_space(tmp_path):
    """Real writes failing with EFBIG (a file size limit on the subprocess): exit 2, one line naming the file and
    the space, nothing half-written; the rerun with space gives the numbers of an uninterrupted run."""
    from safetensors.torch import load_file

    cache = tmp_path / "cache"
    env = {"HYBRIDLIB_CACHE": str(cache)}
    extract = ["extract", "--smoke", "--no-progress", "--text-encoder", "none"]
    code, _, err = _run(extract, limit=20_000, env=env)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: cannot write {cache / 'audio'}") and ".safetensors: the file is larger" in err
    assert "it needs about" in err and not _leftovers(cache)
    code, _, err = _run(extract, env=env)
    assert code == 0, err
    reference = Path(os.environ["HYBRIDLIB_CACHE"]) / "audio"  # the session's cache, filled without failures
    entries = sorted(cache.glob("audio/*/teaching/*.safetensors"))
    assert len(entries) == 64
    for entry in entries:
        twin = reference / entry.relative_to(cache / "audio")
        if twin.is_file():
            assert load_file(str(entry))["frames"].equal(load_file(str(twin))["frames"])

    # train: the checkpoint (5.4 MB) does not fit under a 3 MB limit; the best model (1.8 MB) does
    out = tmp_path / "run"
    code, _, err = _run(_train_args(out, epochs=2), limit=3_000_000)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: cannot write {out / 'seed-0' / runs.CHECKPOINT}: ") and "needs about" in err
    assert "--resume" in err and not _leftovers(out)
    assert not (out / "seed-0" / runs.CHECKPOINT).exists()
    code, _, err = _run(_train_args(out, epochs=2))
    assert code == 2 and "already holds a started run" in err  # a plain rerun would start afresh: say so
    code, _, err = _run(_train_args(out, "--resume", epochs=2))
    assert code == 0, err
    whole = tmp_path / "whole"
    code, _, err = _run(_train_args(whole, epochs=2))
    assert code == 0, err
    assert runs.read_metrics(out / "seed-0", "evaluation")["metrics"] == \
        runs.read_metrics(whole / "seed-0", "evaluation")["metrics"]


def _tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_real_full_file_system(tmp_path):
    """A 1 MB tmpfs: ENOSPC from the kernel, not an injected error. ``extract`` with its cache there is refused
    before encoding (the features' estimate); the write layer itself (a cache entry, a checkpoint, a JSON file)
    meets the full disk. Needs root and mount permission (skipped elsewhere: containers and CI without
    CAP_SYS_ADMIN cannot mount; the injected and file-size-limit tests cover the same write path)."""
    import torch

    from hybridlib.features.cache import save_tensors

    tiny = tmp_path / "tiny"
    if not _tmpfs(tiny, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        code, _, err = _run(["extract", "--smoke", "--no-progress", "--text-encoder", "none"],
                            env={"HYBRIDLIB_CACHE": str(tiny / "cache")})
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert f"error: not enough space in {tiny / 'cache' / 'audio'}" in err
        assert "the features of 64 clips needs about 5.4 MB" in err
        big = torch.zeros(512 * 1024)  # 2 MB
        writes = [(tiny / "cache" / "entry.safetensors", lambda path: save_tensors({"frames": big}, path, {})),
                  (tiny / "run" / runs.CHECKPOINT, lambda path: runs.save_checkpoint(path.parent, {"epoch": 1, "w": big})),
                  (tiny / "run" / "report.json", lambda path: atomic_write_text(path, "x" * 2_000_000))]
        for path, write in writes:
            with pytest.raises(DiskFull, match=rf"^cannot write {path}: no space left on the device \(it needs about "
                                               r"2\.\d MB, [\d.]+ [kM]?B free there\)"):
                write(path)
            assert not path.exists()
        assert not _leftovers(tiny) and not list(tiny.rglob("*.pt")) and not list(tiny.rglob("*.safetensors"))
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(tiny)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)


@pytest.mark.slow
def test_extract_and_train_check_the_free_space_before_they_start(tmp_path, monkeypatch, capsys):
    """With (pretended) 1 MB free: extract names the features' estimate before encoding a clip, train the two
    checkpoints and best model before the first epoch; neither leaves a file behind."""
    monkeypatch.setattr("hybridlib.util.files.free_bytes", lambda folder: 1_000_000)
    cache = tmp_path / "cache"
    monkeypatch.setenv("HYBRIDLIB_CACHE", str(cache))
    assert main(["extract", "--smoke", "--no-progress", "--text-encoder", "none"]) == 2
    err = _error_line(capsys)
    assert "the features of 64 clips needs about 5.4 MB, 1.0 MB is free" in err
    assert not list(cache.glob("audio/*/*/*.safetensors"))
    monkeypatch.undo()
    monkeypatch.setattr("hybridlib.util.files.free_bytes", lambda folder: 1_000_000)
    out = tmp_path / "run"
    assert main(_train_args(out)) == 2
    err = _error_line(capsys)
    assert f"not enough space in {out / 'seed-0'}: training (two checkpoints and the best model) needs about" in err
    assert not (out / "seed-0" / runs.CHECKPOINT).exists() and not (out / "seed-0" / runs.BEST).exists()
    assert runs.run_state(out / "seed-0") is None  # nothing trained: a plain rerun with space is welcome


def test_a_teaching_set_that_does_not_fit_is_refused_before_its_first_clip(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("hybridlib.util.files.free_bytes", lambda folder: 1_000_000)
    out = tmp_path / "teaching"
    assert main(["make-teaching-set", "--out", str(out), "--clips", "4", "2", "2", "--no-progress"]) == 2
    err = _error_line(capsys)
    assert f"not enough space in {tmp_path}: a teaching set of 8 clips needs about 7.1 MB, 1.0 MB is free" in err
    assert list(tmp_path.iterdir()) == []
