"""A clip rewritten in place with the same size and modification time (restored with ``os.utime``) is noticed
by everything that remembers work per audio file: the audio check's memo, the feature cache and the waveform
cache all key on :func:`hybridlib.util.files.file_stamp`, which holds the inode change time a program cannot
set back. ``extract`` end to end, in a subprocess, on a real copy of the smoke teaching set."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from hybridlib.data import ensure_teaching_set
from hybridlib.features.waveform_cache import WaveformCache
from hybridlib.paths import project_root
from hybridlib.util.files import file_stamp

CLIP = "teach_eva_0000.wav"


def rewrite_keeping_size_and_times(path, samples) -> None:
    """Write ``samples`` over ``path`` in place (same format, same length), then set its times back."""
    before = os.stat(path)
    info = sf.info(path)
    with sf.SoundFile(path, "r+") as f:  # in place: same inode, same size
        f.seek(0)
        f.write(samples.astype(np.float32))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert sf.info(path).frames == info.frames


def _extract(data, cache):
    result = subprocess.run([sys.executable, "-m", "hybridlib", "extract", "--data", str(data), "--splits",
                             "evaluation", "--text-encoder", "none", "--cache", str(cache), "--no-progress"],
                            cwd=project_root(), capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(project_root())})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    counts = re.search(r"(\d+) computed, (\d+) cached", result.stdout)
    return result.stdout, (int(counts.group(1)), int(counts.group(2)))


@pytest.mark.slow
def test_a_clip_rewritten_with_the_same_size_and_mtime_is_checked_and_encoded_again(tmp_path):
    source = ensure_teaching_set(smoke=True, progress=False)
    data = tmp_path / "teaching"
    shutil.copytree(source, data)  # real copies: the clip is rewritten in place
    cache = tmp_path / "cache"
    clip = data / "CLOTHO_v2.1" / "clotho_audio_files" / "evaluation" / CLIP
    out, counts = _extract(data, cache)
    assert counts == (16, 0) and "no clip excluded" in out
    entry = next(cache.rglob(f"{CLIP}-*.safetensors"))
    from safetensors.torch import load_file

    old_frames = load_file(str(entry))["frames"]
    # other sound, same size and modification time: encoded again (the other 15 clips come from the cache)
    samples, _ = sf.read(clip, dtype="float32")
    rewrite_keeping_size_and_times(clip, np.roll(samples, len(samples) // 2) * 0.5)
    out, counts = _extract(data, cache)
    assert counts == (1, 15), out
    assert not torch.equal(load_file(str(entry))["frames"], old_frames)
    # silence, same size and modification time: the remembered audio check does not vouch for it any more
    rewrite_keeping_size_and_times(clip, np.zeros_like(samples))
    out, _ = _extract(data, cache)
    assert "excluded 1 clip(s) with unusable audio" in out and f"{CLIP} (audio is silent)" in out, out


def test_waveform_cache_and_stamp_notice_a_rewrite_with_restored_times(tmp_path):
    path = tmp_path / "clip.wav"
    rng = np.random.default_rng(0)
    sf.write(path, rng.uniform(-0.5, 0.5, 16000).astype(np.float32), 16000, subtype="PCM_16")
    stamp = file_stamp(path)
    cache = WaveformCache(tmp_path / "cache")
    first = cache.load(path, 16000)
    assert torch.equal(cache.load(path, 16000), first) and cache.stats["waveform_hits"] == 1
    rewrite_keeping_size_and_times(path, rng.uniform(-0.5, 0.5, 16000))
    assert file_stamp(path) != stamp and file_stamp(path)["mtime_ns"] == stamp["mtime_ns"]
    again = cache.load(path, 16000)
    assert cache.stats["waveform_computed"] == 2 and not torch.equal(again, first)
