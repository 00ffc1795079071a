"""Training configs: YAML with ``extends``, ``--set`` overrides, validation errors naming file and field."""

from __future__ import annotations

import pytest

from hybridlib import config as C


def test_load_config_extends_and_overrides(tmp_path):
    (tmp_path / "_base.yaml").write_text("epochs: 7\nbatch_size: 16\nmodel:\n  fusion: late\n  dropout: 0.2\n")
    (tmp_path / "run.yaml").write_text("extends: _base.yaml\nname: r\nmodel:\n  metadata_kind: os\n")
    cfg = C.load_config(tmp_path / "run.yaml", overrides=["epochs=3", "model.fusion=mid", "grad_clip=1.5"])
    assert cfg.name == "r" and cfg.epochs == 3 and cfg.batch_size == 16 and cfg.grad_clip == 1.5
    assert cfg.model == {"fusion": "mid", "dropout": 0.2, "metadata_kind": "os"}
    cfg = C.load_config(tmp_path / "run.yaml", seeds=[4, 5])  # notebook parameters as keywords
    assert cfg.seeds == [4, 5]


def test_config_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    with pytest.raises(C.ConfigError, match=r"bad\.yaml.*unknown field.*'epoch'"):
        C.load_config(bad)
    bad.write_text("schedule: linear\n")
    with pytest.raises(C.ConfigError, match=r"bad\.yaml.*'schedule'"):
        C.load_config(bad)
    bad.write_text("batch_size: 1\n")
    with pytest.raises(C.ConfigError, match="'batch_size'"):
        C.load_config(bad)
    with pytest.raises(C.ConfigError, match="not found"):
        C.load_config(tmp_path / "missing.yaml")
    with pytest.raises(C.ConfigError, match="key=value"):
        C.parse_overrides(["epochs"])
    cfg = C.TrainConfig(model={"fusion": "late", "nope": 1})
    with pytest.raises(C.ConfigError, match="nope"):
        cfg.model_config()


def test_metadata_degradation_config_is_validated():
    C.TrainConfig(metadata_degradation={"remove_metadata": 0.5, "drop_tags": 0.2, "seed": 1}).validate()
    with pytest.raises(C.ConfigError, match="metadata_degradation"):
        C.TrainConfig(metadata_degradation={"remove": 0.5}).validate()
    with pytest.raises(C.ConfigError, match="remove_metadata must be a fraction"):
        C.TrainConfig(metadata_degradation={"remove_metadata": 1.5}).validate()


def test_input_pipeline_fields_are_validated_and_do_not_block_a_resume():
    from hybridlib.runs import config_differences

    cfg = C.load_config(overrides=["num_workers=2", "waveform_cache=false"])
    assert cfg.num_workers == 2 and cfg.waveform_cache is False
    assert C.TrainConfig().num_workers == 0 and C.TrainConfig().waveform_cache is True  # CPU-sensible defaults
    for bad in (["num_workers=-1"], ["num_workers=1.5"], ["num_workers=true"], ["waveform_cache=3"]):
        with pytest.raises(C.ConfigError, match=bad[0].split("=")[0]):
            C.load_config(overrides=bad)
    # the batches are the same for any value, so a run may resume with other values
    assert config_differences(C.TrainConfig().to_dict(), cfg.to_dict()) == []


@pytest.mark.parametrize("override, field, words", [
    ("epochs=true", "epochs", "not a boolean"),
    ("batch_size=false", "batch_size", "not a boolean"),
    ("lr=.nan", "lr", "is NaN"),
    ("lr_min=.nan", "lr_min", "is NaN"),
    ("weight_decay=.nan", "weight_decay", "is NaN"),
    ("warmup_epochs=.inf", "warmup_epochs", "is infinity"),
    ("grad_clip=.nan", "grad_clip", "is NaN"),
    ("seed=-3", "seed", "non-negative integer"),
    ("fs_seed=-1", "fs_seed", "non-negative integer"),
    ("seeds=[0, -1]", "seeds", "item 1 must be a non-negative integer"),
    ("seeds=[true]", "seeds", "not a boolean"),
    ("smoke=3", "smoke", "true or false"),
    ("audio_check=partial", "audio_check", "one of ['header', 'full']"),
    ("bad_audio=skip", "bad_audio", "one of ['exclude', 'error']"),
    ("max_audio_seconds=0", "max_audio_seconds", "positive number"),
    ("loss_kwargs.tau=.nan", "loss_kwargs.tau", "is NaN"),
    ("metadata_degradation.remove_metadata=.nan", "metadata_degradation", "must be a fraction"),
    ("model.num_layers=true", "num_layers", "not a boolean"),
    ("model.dropout=.nan", "dropout", "got NaN"),
])
def test_values_that_should_not_pass_are_refused_naming_their_field(override, field, words):
    with pytest.raises(C.ConfigError) as info:
        C.load_config(overrides=[override])
    message = str(info.value)
    assert field in message and words in message, message
    if field == "lr":
        assert "lr_min" not in message  # the NaN is named where it is, not in the field compared with it


def test_cli_refuses_a_boolean_epoch_count_in_one_line(capsys):
    from hybridlib.cli import main
    from hybridlib.config import experiments_dir

    config = str(experiments_dir() / "teaching" / "baseline.yaml")
    assert main(["train", "--config", config, "--smoke", "--set", "epochs=true", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "'epochs'" in err and "boolean" in err and "\n" not in err
