"""Bad input never takes a run down, nothing untrusted executes: the entry points end to end.

The data: the session's smoke teaching set, mirrored into a temporary folder with hard links (copies across file
systems; not per-file symbolic links, which the readers refuse when they lead out of the audio folder) and then
damaged - a silent clip, a clip whose file was deleted, an undecodable clip.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rehearsal_helpers as H
import soundfile as sf
import torch

from hybridlib import runs
from hybridlib.cli import main
from hybridlib.config import experiments_dir
from hybridlib.data import ensure_teaching_set

CONFIG = str(experiments_dir() / "teaching" / "hybrid-late.yaml")
BAD = {"teach_dev_0000.wav": "silent", "teach_dev_0001.wav": "no audio file on disk",
       "teach_val_0000.wav": "cannot read audio"}


@pytest.fixture
def damaged_set(tmp_path):
    source = ensure_teaching_set(smoke=True, progress=False)
    root = tmp_path / "teaching"
    for path in source.rglob("*"):
        target = root / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".wav":
            H.mirror_file(path, target)
        else:
            shutil.copy(path, target)
    audio = root / "CLOTHO_v2.1" / "clotho_audio_files"
    (audio / "development" / "teach_dev_0000.wav").unlink()
    sf.write(audio / "development" / "teach_dev_0000.wav", np.zeros(44100 * 5), 44100, subtype="PCM_16")
    (audio / "development" / "teach_dev_0001.wav").unlink()
    (audio / "validation" / "teach_val_0000.wav").unlink()
    (audio / "validation" / "teach_val_0000.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    return root


def _train(out, root, *extra):
    return main(["train", "--config", CONFIG, "--smoke", "--out", str(out), "--seed", "0", "--set", "epochs=1",
                 "--set", "tensorboard=false", "--set", f"data_root={root}", "--no-progress", *extra])


@pytest.mark.slow
def test_train_and_evaluate_exclude_bad_clips_and_report_them_all(damaged_set, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, damaged_set) == 0
    printed = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[data]")]
    assert len(printed) == 1 and "excluded 3 clip(s) with unusable audio" in printed[0]
    report = json.loads((out / "seed-0" / runs.DATA_REPORT).read_text())
    excluded = {clip: why for bad in report["excluded"].values() for clip, why in bad.items()}
    assert set(excluded) == set(BAD) and all(BAD[clip] in why for clip, why in excluded.items()), excluded
    assert report["clips"]["train"] == 32 - 2 and report["clips"]["val"] == 16 - 1
    dev = next(r for r in report["load_reports"] if r["split"] == "development")
    assert dev["excluded"] == 2 and dev["missing_audio"] == 1 and set(dev["bad_audio"]) == set(list(BAD)[:2])
    # evaluate screens its split too, prints the line and saves the report beside the metrics
    assert main(["evaluate", "--run", str(out), "--split", "validation", "--no-progress"]) == 0
    assert "teach_val_0000.wav (cannot read audio header" in capsys.readouterr().out
    assert "teach_val_0000.wav" in json.loads((out / "data_report-validation.json").read_text())["excluded"][
        "teaching/validation"]
    assert main(["evaluate", "--run", str(out), "--split", "validation", "--bad-audio", "error", "--no-progress"]) == 2
    assert "teach_val_0000.wav" in capsys.readouterr().err
    # the policy that turns exclusion into a hard error names every bad clip at once, in one line
    assert _train(tmp_path / "strict", damaged_set, "--bad-audio", "error") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: 3 clip(s) with unusable audio in teaching/development, teaching/validation")
    assert all(name in err for name in BAD) and "\n" not in err


@pytest.mark.slow
def test_extract_excludes_bad_clips_reports_them_and_policy_errors(damaged_set, tmp_path, capsys):
    args = ["extract", "--data", str(damaged_set), "--text-encoder", "none", "--no-progress",
            "--cache", str(tmp_path / "cache")]
    assert main([*args, "--splits", "validation"]) == 0
    out = capsys.readouterr().out
    assert "[extract] 15 clips to encode; excluded 1 clip(s) with unusable audio" in out
    (report,) = (tmp_path / "cache").rglob("extract_report-teaching.json")
    assert list(json.loads(report.read_text())["excluded"]) == ["validation/teach_val_0000.wav"]
    assert main([*args, "--bad-audio", "error"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(name in err for name in BAD)
    # the header check is fast but cannot hear silence: only the deleted clip is left out
    assert main([*args, "--splits", "development", "--audio-check", "header", "--chunk-seconds", "4",
                 "--max-batch-seconds", "20"]) == 0
    assert "excluded 1 clip(s) with unusable audio: development/teach_dev_0001.wav" in capsys.readouterr().out
    report = json.loads(report.read_text())
    assert report["audio_check"] == "header" and list(report["excluded"]) == ["development/teach_dev_0001.wav"]


def test_a_data_root_that_does_not_exist_is_an_error(tmp_path, capsys):
    missing = tmp_path / "typo"
    assert _train(tmp_path / "run", missing) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and f"data folder {missing} does not exist" in err and "\n" not in err
    assert "leave data_root unset to use (and generate) the teaching set" in err
    assert not missing.exists()  # nothing generated there


@pytest.mark.slow
def test_resume_never_runs_a_planted_checkpoint_and_names_the_file(tmp_path, capsys):
    """A checkpoint whose history unpickles through ``exec`` is refused; the marker file is never written."""
    out = tmp_path / "run"
    marker = tmp_path / "pwned"
    args = ["train", "--config", CONFIG, "--smoke", "--out", str(out), "--seed", "0", "--set", "epochs=2",
            "--set", "tensorboard=false", "--no-progress"]
    assert main([*args, "--set", "stop_after_epoch=1"]) == 0
    capsys.readouterr()
    ckpt = out / "seed-0" / runs.CHECKPOINT
    state = torch.load(ckpt, weights_only=True)

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

    state["history"] = [Payload()]
    torch.save(state, ckpt)
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert not marker.exists()
    assert err.startswith(f"error: {ckpt} is damaged or not a plain-data checkpoint") and "\n" not in err


@pytest.mark.slow
def test_damaged_run_files_are_named_in_one_line_by_every_entry_point(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", CONFIG, "--smoke", "--out", str(out), "--seed", "0", "--set", "epochs=3",
            "--set", "tensorboard=false", "--no-progress"]
    assert main([*args, "--set", "stop_after_epoch=2"]) == 0  # interrupted: checkpoints of epochs 2 and 1
    capsys.readouterr()
    seed = out / "seed-0"
    # truncated last checkpoint: --resume names it and points at checkpoint.prev.pt
    data = (seed / runs.CHECKPOINT).read_bytes()
    (seed / runs.CHECKPOINT).write_bytes(data[: len(data) // 3])
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "checkpoint.pt is damaged" in err and "checkpoint.prev.pt (epoch 1) is intact" in err
    assert "\n" not in err
    # damaged best model / its config: evaluate names the file
    best = seed / runs.BEST
    weights = (best / "model.safetensors").read_bytes()
    (best / "model.safetensors").write_bytes(weights[:100])
    assert main(["evaluate", "--run", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(best / "model.safetensors") in err and "damaged" in err and "\n" not in err
    (best / "model.safetensors").write_bytes(weights)
    (best / "model_config.json").write_text('{"fusion": "late", ')
    assert main(["evaluate", "--run", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(best / "model_config.json") in err and "damaged" in err and "\n" not in err


def _payload(marker):
    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

    return Payload()


@pytest.mark.slow
def test_planted_official_audio_checkpoint_is_refused_in_one_line(damaged_set, tmp_path, capsys):
    from hybridlib.models.audio.sfx_cnn import SfxCNN

    marker = tmp_path / "pwned"
    planted = tmp_path / "checkpoint.pth"
    torch.save(({**SfxCNN().state_dict(), "fc.hook": _payload(marker)}, {"classes": 3}), planted)
    args = ["extract", "--data", str(damaged_set), "--splits", "evaluation", "--text-encoder", "none",
            "--cache", str(tmp_path / "cache"), "--no-progress", "--checkpoint"]
    assert main([*args, str(planted)]) == 2
    err = capsys.readouterr().err.strip()
    assert not marker.exists()
    assert err.startswith(f"error: {planted} is damaged or not a plain-data checkpoint") and "\n" not in err
    assert "it needs builtins.exec" in err or "it needs exec" in err
    torch.save(SfxCNN().state_dict(), planted)
    planted.write_bytes(planted.read_bytes()[:5000])  # truncated
    assert main([*args, str(planted)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {planted} is damaged") and "\n" not in err


def test_planted_text_model_weights_are_refused_naming_the_file(tmp_path):
    """``transformers`` reads ``pytorch_model.bin`` with ``weights_only=True``: the payload never runs."""
    from transformers import BertConfig, BertModel

    from hybridlib.bundled import minilm_dir
    from hybridlib.models.text import TextModelError, build_text_encoder

    folder = tmp_path / "bert"
    folder.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        if (minilm_dir() / name).is_file():
            shutil.copy(minilm_dir() / name, folder / name)
    config = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32)
    config.save_pretrained(folder)
    marker = tmp_path / "pwned"
    torch.save({**BertModel(config).state_dict(), "hook": _payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(TextModelError) as info:
        build_text_encoder(str(folder))
    assert not marker.exists()
    message = str(info.value)
    assert str(folder / "pytorch_model.bin") in message and "not a plain-data checkpoint" in message
    assert "\n" not in message and "weights_only=False" not in message


def test_a_split_whose_every_clip_is_bad_is_named(tmp_path):
    from hybridlib.config import teaching_config
    from hybridlib.data import DatasetError
    from hybridlib.features.prepare import prepare_data

    source = ensure_teaching_set(smoke=True, progress=False)
    root = tmp_path / "teaching"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("*.wav"))  # CSVs without any audio
    cfg = teaching_config("baseline", smoke=True, data_root=str(root))
    with pytest.raises(DatasetError, match=r"^no usable clip in teaching/development, teaching/validation, "
                                           r"teaching/evaluation: 64 clip\(s\) with unusable audio: teach_dev_0000.wav "
                                           r"\(no audio file on disk\).*and 59 more; the captions are there but not the audio: download it") as info:
        prepare_data(cfg, progress=False)
    assert "\n" not in str(info.value)
