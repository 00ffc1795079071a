"""What users type, read one way everywhere: the YAML reader of configs, ``--set`` and ``--params``
(:mod:`hybridlib.util.yaml_values`), the number notation, how echoed text is shortened, non-UTF-8 text, and the
one-sentence account of a refused pickle (:func:`hybridlib.util.errors.one_line`)."""

from __future__ import annotations

import io
import os

import pytest
import torch
from pickle_payloads import KINDS, planted_pickle

from hybridlib.config import ConfigError, load_config, parse_overrides, read_config_dict
from hybridlib.notebook_parameters import ParameterError, check_parameter_values
from hybridlib.runner import load_params
from hybridlib.util.errors import UserError, one_line, pickle_refusal
from hybridlib.util.values import describe_value, not_utf8, parse_number, shorten, value_problem
from hybridlib.util.yaml_values import read_yaml

NUMBERS = {"1e-4": 1e-4, "1E-4": 1e-4, "1e+3": 1000.0, "-2e-5": -2e-5, ".5": 0.5, "5.": 5.0, "-.5": -0.5,
           "1.0e-3": 1e-3, "2e5": 2e5, "3": 3, "-3": -3, "+7": 7, "017": 17, "1_000": 1000, "2_000.5": 2000.5}
TEXTS = ["0x10", "0o17", "0b101", "1:30", "1e", "e5", "_1", "1__0", "1.5.3", "nan", "inf", "2024-01-01", "1e-4x"]


@pytest.mark.parametrize("text, number", NUMBERS.items())
def test_numbers_are_read_as_people_write_them(text, number):
    value = read_yaml(text, "x")
    assert value == number and type(value) is type(number), (text, value)
    assert parse_number(text) == number
    assert read_yaml(f"{{lr: {text}, seeds: [{text}]}}", "x") == {"lr": number, "seeds": [number]}


@pytest.mark.parametrize("text", TEXTS)
def test_other_notations_stay_text(text):
    assert read_yaml(text, "x") == text and parse_number(text) is None


def test_special_values_and_plain_tags():
    assert str(read_yaml(".nan", "x")) == "nan" and read_yaml("-.inf", "x") == float("-inf")
    assert read_yaml("!!str 5", "x") == "5" and read_yaml("!!float 1e-4", "x") == 1e-4 and read_yaml("!!int 3", "x") == 3
    assert read_yaml("[yes, no, null, ~, text]", "x") == [True, False, None, None, "text"]
    with pytest.raises(UserError, match=r"!!int '1e3' is not an integer"):
        read_yaml("!!int 1e3", "x")


@pytest.mark.parametrize("value, tag", [
    ('!!python/object/apply:os.system ["touch {marker}"]', "!!python/object/apply:os.system"),
    ("!!python/name:os.system", "!!python/name:os.system"),
    ("{a: [1, !!python/object/new:os.system [x]]}", "!!python/object/new:os.system"),
    ("!!binary aGVsbG8=", "!!binary"), ("!!set {a, b}", "!!set"), ("!!omap [a: 1]", "!!omap"),
    ("!!timestamp 2024-01-01", "!!timestamp"), ("!foo bar", "!foo"), ("!<tag:example.com,2000:x> 1", "tag:example"),
])
def test_tags_other_than_plain_values_are_refused_in_one_line(value, tag, tmp_path):
    marker = tmp_path / "ran"
    value = value.replace("{marker}", str(marker))
    with pytest.raises(UserError) as info:
        read_yaml(value, "--set name=...")
    message = str(info.value)
    assert message.startswith(f"--set name=...: the tag {tag}") and "is refused" in message and "\n" not in message
    with pytest.raises(ConfigError, match="is refused"):  # --set and config files alike
        parse_overrides([f"name={value}"])
    config = tmp_path / "c.yaml"
    config.write_text(f"name: {value}\n")
    with pytest.raises(ConfigError, match=rf"^{config}: the tag .* \(line 1, column \d+\) is refused"):
        read_config_dict(config)
    assert not marker.exists()


def test_broken_yaml_is_one_line_naming_where():
    with pytest.raises(ConfigError) as info:
        parse_overrides(["lr=[1"])
    assert str(info.value) == ("--set lr=[1: not valid YAML (while parsing a flow sequence: expected ',' or ']', "
                               "but got '<stream end>' at line 1, column 3)")
    for pairs in (["model=3", "model.fusion=mid"], ["=3"], [".x=3"], ["lr"]):
        with pytest.raises(ConfigError) as info:
            parse_overrides(pairs)
        assert "\n" not in str(info.value)


def test_configs_and_overrides_accept_exponents_and_refuse_what_cannot_work(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("lr: 1e-3\nlr_min: 1E-6\nwarmup_epochs: .5\nmodel:\n  dropout: 1e-1\n")
    cfg = load_config(config, ["text_lr=2e-5", "gamma=5e-1"])
    assert (cfg.lr, cfg.lr_min, cfg.warmup_epochs, cfg.text_lr, cfg.gamma) == (1e-3, 1e-6, 0.5, 2e-5, 0.5)
    assert cfg.model["dropout"] == 0.1
    # integer fields take whole numbers written as integers; the message says how to write it
    with pytest.raises(ConfigError, match=r"field 'epochs' must be a positive integer; write 100: whole numbers "
                                          r"are written without a point or exponent \(got 100.0\)"):
        load_config(config, ["epochs=1e2"])
    with pytest.raises(ConfigError, match=r"field 'epochs' must be a positive integer \(got '0x10'\)"):
        load_config(config, ["epochs=0x10"])
    for pair, message in (("lr=-2e-5", "field 'lr' must be a positive number"), ("lr=.nan", "'lr' is NaN"),
                          ("lr=.inf", "'lr' is infinity"), ("lr=inf", "'lr' must be a positive number (got 'inf')")):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_config(config, [pair])


@pytest.mark.parametrize("value, message", [
    ("{teaching: 5}", "field 'metadata_by_dataset' must map training datasets to a metadata kind (os, cs, fs): "
                      "'teaching': 5 is not a metadata kind"),
    ("{teaching: OS}", "'teaching': 'OS' is not a metadata kind"),
    ("{teaching: [os]}", "'teaching': ['os'] is not a metadata kind"),
    ("{clotho: os}", "key 'clotho' is not a training dataset of this config (teaching)"),
    ("{5: os}", "key 5 is not a training dataset"),
    ("[os]", "field 'metadata_by_dataset' must be a mapping (got ['os'])"),
])
def test_a_wrong_entry_in_a_mapping_field_names_the_field_and_the_key(value, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"metadata_by_dataset={value}"])
    assert message in str(info.value) and "\n" not in str(info.value)
    assert load_config(None, ["metadata_by_dataset={teaching: fs}"]).metadata_by_dataset == {"teaching": "fs"}


def test_params_files_and_notebook_checks_agree_with_configs(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text('LR: 1e-4\n"06":\n  EPOCHS: 3\n')
    assert load_params(params) == {"LR": 1e-4, "06": {"EPOCHS": 3}}
    check_parameter_values({"LR": 1e-4, "EPOCHS": 3})
    params.write_text("LR: !!python/object/apply:os.system [x]\n")
    with pytest.raises(UserError, match=r"p.yaml: the tag !!python/object/apply:os.system \(line 1, column 5\)"):
        load_params(params)
    # papermill's own YAML 1.1 reader (-f/-y) hands '1e-4' over as text: the notebook's check says why
    with pytest.raises(ParameterError) as info:
        check_parameter_values({"LR": "1e-4"})
    assert "LR: must be a positive number or None, not the text '1e-4' (a YAML 1.1 reader such as papermill's" \
           in str(info.value)
    with pytest.raises(ParameterError, match=r"EPOCHS: must be a positive integer or None; write 100"):
        check_parameter_values({"EPOCHS": 100.0})


def test_echoed_text_is_shortened_by_one_rule():
    long = "dog barking " * 10_000
    assert shorten("short") == "short" and len(shorten(long)) <= 80
    assert shorten(long).endswith("... (120,000 characters)") and shorten(long).startswith("dog barking")
    shown = describe_value(long)
    assert shown.startswith("'dog barking") and shown.endswith("... (120,000 characters)") and len(shown) < 90
    assert len(describe_value(list(range(10_000)))) <= 80
    assert describe_value("x") == "'x'" and describe_value(float("nan")) == "NaN"
    # every message that repeats a user value goes through it: a field, --set, a notebook parameter
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"name={'x' * 100_000}", "epochs=-1"])
    assert len(str(info.value)) < 300
    with pytest.raises(ConfigError) as info:
        parse_overrides([f"lr=[{'1' * 100_000}"])
    assert len(str(info.value)) < 300
    with pytest.raises(ParameterError) as info:
        check_parameter_values({"SPLIT": "x" * 100_000})
    assert len(str(info.value)) < 300
    assert value_problem("x" * 100_000, "number") == "must be a number"


def test_text_that_is_not_utf8_is_named():
    assert not_utf8("plain text, é, 狗") is None
    assert not_utf8(os.fsdecode(b"dog \xff\xfe")) == r"bytes b'\xff\xfe' at character 4"


# ------------------------------------------------------------------------------------- refused pickles
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_refused_pickle_is_one_sentence_naming_the_global_for_both_wordings(kind, tmp_path):
    marker = tmp_path / "ran"
    _, refused, wording = KINDS[kind]
    with pytest.raises(Exception) as info:
        torch.load(io.BytesIO(planted_pickle(kind, marker)), weights_only=True)
    assert wording in str(info.value)  # torch 2.9 words the two refusals differently
    assert one_line(info.value) == f"UnpicklingError: it needs {refused}, which is not plain data"
    assert not marker.exists()
    for wording in (f"Weights only load failed. x\n\nTrying to load unsupported GLOBAL {refused} whose module "
                    "posix is blocked.\n\nCheck the documentation",
                    f"Weights only load failed. (1) Re-running `torch.load` with `weights_only` set to `False` "
                    f"will likely succeed\n\tWeightsUnpickler error: Unsupported global: GLOBAL {refused} was not "
                    "an allowed global by default. Please use ...",
                    "Weights only load failed. ... Trying to call reduce for unrecognized function <built-in "
                    "function system> which belongs to <module 'posix'>"):
        sentence = pickle_refusal(wording)
        assert sentence and "weights_only" not in sentence and "Re-running" not in sentence
    assert pickle_refusal("Weights only load failed. something new") == (
        "it holds more than plain data (torch's weights-only reader refused it)")
    assert pickle_refusal("PytorchStreamReader failed reading zip archive") is None


def test_saved_configs_read_back_equal(tmp_path):
    """A run's ``config.yaml`` is written so the reader gets the same values: a string that looks like a number
    in the reader's notation (``"1e5"``, a YAML 1.1 writer leaves it unquoted) is quoted."""
    from hybridlib.config import config_to_yaml
    from hybridlib.util.yaml_values import dump_yaml

    values = {"name": "1e5", "a": "1E-4", "b": ".5", "c": "0x10", "d": "2024-01-01", "e": 1e-5, "f": [1, 2.5, "yes"],
              "g": None, "h": True, "i": "1_000", "j": 100000.0, "k": -3, "l": "017"}
    again = read_yaml(dump_yaml(values), "x")
    assert again == values and [type(v) for v in again.values()] == [type(v) for v in values.values()]
    config = tmp_path / "c.yaml"
    config.write_text('name: "1e5"\nlr: 1e-4\n')
    cfg = load_config(config)
    saved = tmp_path / "saved.yaml"
    saved.write_text(config_to_yaml(cfg))
    assert load_config(saved).to_dict() == cfg.to_dict() and cfg.name == "1e5" and cfg.lr == 1e-4


def test_aliases_that_explode_or_loop_and_deep_nesting_are_one_line():
    assert read_yaml("a: &x [1, 2]\nb: *x", "x") == {"a": [1, 2], "b": [1, 2]}
    bomb = "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 13)) + "name: *a12\n"
    for text in (bomb, "&r [*r]", "a: &m {b: *m}"):
        with pytest.raises(UserError, match=r"^c.yaml: holds more than 1,000,000 values once its aliases"):
            read_yaml(text, "c.yaml")
    with pytest.raises(ConfigError, match=r"nested too deeply to be a config value$"):
        parse_overrides(["x=" + "[" * 100_000])
    assert len(describe_value([[[[[1]]]]] * 1000)) <= 80
