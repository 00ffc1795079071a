"""hybridlib.training.performance (notebook 09, benchmarks/gpu_check.py), the precision rule of training
(``amp``/``amp_dtype``), evaluation under autocast, and gpu_plan's memory estimate per batch and card."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from training_helpers import TinyModel, synthetic_split, tiny_cfg, tiny_training_data

from hybridlib.losses import get_loss
from hybridlib.training import performance as P
from hybridlib.util.errors import UserError


def _batches(n: int = 3, b: int = 8):
    split = synthetic_split("development", 40, seed=1)
    return list(split.training_batches(b, seed=0, epoch=1))[:n]


def test_precisions_and_their_scalers():
    cpu = torch.device("cpu")
    assert P.precision("float32", cpu) == P.Precision("float32", None, False)
    assert P.precision("float16", cpu).scaler and P.precision("float16", cpu).dtype is torch.float16
    assert not P.precision("bfloat16", cpu).scaler and P.precision("bfloat16", cpu).dtype is torch.bfloat16
    assert P.device_precisions("cpu") == ["float32", "bfloat16"]
    with pytest.raises(UserError, match="choose from float32, float16, bfloat16"):
        P.precision("fp8", cpu)


def test_training_precision_follows_amp_and_amp_dtype():
    from hybridlib.config import ConfigError
    from hybridlib.training.ingredients import amp_in_effect, amp_precision

    assert not amp_in_effect(tiny_cfg(amp=True), "cpu")  # float16 on a CPU: ignored, as before
    assert amp_in_effect(tiny_cfg(amp=True, amp_dtype="bfloat16"), "cpu")
    assert not amp_in_effect(tiny_cfg(amp=False, amp_dtype="bfloat16"), "cpu")
    assert amp_in_effect(tiny_cfg(amp=True), "cuda")
    assert amp_precision(tiny_cfg(amp=True, amp_dtype="bfloat16"), "cpu").name == "bfloat16"
    assert amp_precision(tiny_cfg(amp=True), "cpu").name == "float32"
    with pytest.raises(ConfigError, match="amp_dtype"):
        tiny_cfg(amp_dtype="float8")


def test_bfloat16_training_on_a_cpu_runs_end_to_end_and_evaluates_under_autocast(tmp_path):
    from hybridlib import runs
    from hybridlib.evaluation import evaluate_split
    from hybridlib.training import train

    cfg = tiny_cfg(epochs=2, amp=True, amp_dtype="bfloat16")
    torch.manual_seed(0)
    result = train(cfg, tmp_path / "bf16", data=tiny_training_data(cfg), model=TinyModel(), progress=False)
    assert result.finished and all(math.isfinite(v) for v in result.test_metrics.values())
    assert runs.read_ingredients(tmp_path / "bf16")["optimisation"]["amp_dtype"] == "bfloat16"
    test = tiny_training_data(cfg).test
    plain = evaluate_split(result.model, test, batch_size=5)
    mixed = evaluate_split(result.model, test, batch_size=5, autocast_dtype=torch.bfloat16)
    assert mixed.keys() == plain.keys() and mixed["t2a_mAP@10"] == pytest.approx(plain["t2a_mAP@10"], abs=25)


def test_peak_memory_on_a_cpu_sees_a_large_allocation():
    with P.PeakMemory("cpu") as peak:
        block = torch.ones(64, 2**20)  # 256 MB, written
        del block
    assert peak.bytes > 150 * 2**20 and peak.peak >= peak.bytes


def test_measure_steps_times_the_steps_a_training_runs():
    loss_fn = get_loss("nt-xent")
    batches = _batches()
    torch.manual_seed(0)
    model = TinyModel(dropout=0.0)
    timed = P.measure_steps(model, batches, loss_fn, torch.optim.Adam(model.parameters(), 1e-2), "cpu", steps=4,
                            warmup=1, flops=lambda b: 1e6)
    assert len(timed.steps) == len(timed.waits) == len(timed.losses) == 4 and timed.batch_size == 8
    assert timed.steps_per_second > 0 and timed.peak_bytes > 0 and timed.tflops > 0
    # the same steps by hand (batches cycled: warm-up on batch 0, then 1, 2, 0, 1)
    torch.manual_seed(0)
    again = TinyModel(dropout=0.0)
    opt = torch.optim.Adam(again.parameters(), 1e-2)
    prec = P.precision("float32", "cpu")
    scaler = prec.grad_scaler(torch.device("cpu"))
    losses = [float(P.training_step(again, b, loss_fn, opt, scaler, prec, torch.device("cpu")))
              for b in [batches[i % 3] for i in range(5)]]
    assert timed.losses == pytest.approx(losses[1:])
    assert set(timed.summary()) >= {"steps_per_second", "clips_per_second", "peak_memory_mb", "last_loss"}


def test_compare_precisions_same_start_different_numbers():
    rows = P.compare_precisions(lambda: TinyModel(dropout=0.0), lambda m: torch.optim.Adam(m.parameters(), 1e-2),
                                get_loss("nt-xent"), _batches(), "cpu", ["float32", "bfloat16"], steps=2)
    assert [r["precision"] for r in rows] == ["float32", "bfloat16"]
    assert rows[0]["max_abs_diff"] == 0.0 and 0 < rows[1]["max_abs_diff"] < 0.1
    text = P.precision_verdict(rows)
    assert text.startswith("bfloat16: ") and "the speed of float32" in text
    broken = [rows[0], {**rows[1], "last_loss": float("nan")}]
    assert "not finite" in P.precision_verdict(broken)
    # PRECISIONS=["float32"] or without float32: a sentence (an empty or "." Markdown is read as a file name)
    assert P.precision_verdict(rows[:1]).startswith("Only float32 was measured")
    assert P.precision_verdict(rows[1:]) == ("Measured: bfloat16. Without float32 there is no reference to compare "
                                             "with: add it to PRECISIONS.")


def test_float16_asked_for_on_a_cpu_runs_and_is_reported_as_measured():
    """Notebook 09 with ``PRECISIONS=["float32", "float16"]`` on a CPU: PyTorch's CPU autocast runs float16
    (slowly, without the hardware for it), so the comparison runs and says what it measured."""
    rows = P.compare_precisions(lambda: TinyModel(dropout=0.0), lambda m: torch.optim.Adam(m.parameters(), 1e-2),
                                get_loss("nt-xent"), _batches(), "cpu", ["float32", "float16"], steps=2)
    assert [r["precision"] for r in rows] == ["float32", "float16"] and rows[1]["similarity_dtype"] == "float16"
    assert 0 < rows[1]["max_abs_diff"] < 0.1 and math.isfinite(rows[1]["last_loss"])
    assert P.precision_verdict(rows).startswith("float16: ")


@pytest.mark.parametrize("name", ["tpu", "cuda", "cuda:3", "mps", "gpu"])
def test_a_device_that_is_not_here_is_one_line(name):
    """``DEVICE`` / ``device:`` on this CPU-only machine: auto and cpu resolve, anything else is one line."""
    from hybridlib.util.devices import resolve_device

    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
    if name == "mps" and torch.backends.mps.is_available():  # pragma: no cover - a Mac
        return
    with pytest.raises(UserError) as err:
        resolve_device(name)
    assert "\n" not in str(err.value) and "use" in str(err.value) and repr(name) in str(err.value)


def test_profile_step_is_a_table_and_quiet(capfd):
    model = TinyModel(dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    prec = P.precision("float32", "cpu")
    batch = _batches(1)[0]
    cpu = torch.device("cpu")
    table = P.profile_step(lambda: P.training_step(model, batch, get_loss("nt-xent"), opt,
                                                   prec.grad_scaler(cpu), prec, cpu), "cpu", rows=5)
    assert list(table.columns) == ["operator", "calls", "self CPU ms", "total CPU ms", "share of step"]
    assert 1 <= len(table) <= 5 and table["share of step"].sum() <= 1 + 1e-9
    assert table["self CPU ms"].is_monotonic_decreasing
    assert capfd.readouterr().err == ""


def test_local_slices_meet_fewer_negatives_than_the_gathered_batch():
    loss_fn = get_loss("nt-xent")
    torch.manual_seed(0)
    sim = torch.nn.functional.normalize(torch.randn(6, 4), dim=-1) @ torch.nn.functional.normalize(
        torch.randn(6, 4), dim=-1).T
    one = P.local_vs_global_loss(sim, 1, loss_fn)
    assert one["local_losses"] == [pytest.approx(one["gathered_loss"])]
    two = P.local_vs_global_loss(sim, 2, loss_fn)
    assert two["per_process"] == [3, 3] and two["negatives_per_caption"] == {"gathered": 5, "local": [2, 2]}
    from hybridlib.features.splits import same_item_mask

    assert two["local_losses"][1] == pytest.approx(float(loss_fn(sim[3:, 3:], same_item=same_item_mask(
        torch.arange(3)))))
    assert two["gathered_loss"] == pytest.approx(one["gathered_loss"])


def test_train_command_one_process_or_torchrun():
    one = P.train_command("c.yaml", "out", 1, seed=3, sets=["epochs=1"])
    assert one[:4] == [sys.executable, "-m", "hybridlib", "train"] and one[-2:] == ["--set", "epochs=1"]
    assert "--seed" in one and one[one.index("--seed") + 1] == "3"
    two = P.train_command("c.yaml", "out", 2)
    assert two[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    with pytest.raises(UserError, match="at least 1"):
        P.train_command("c.yaml", "out", 0)
    with pytest.raises(UserError, match="failed"):
        P.run_training([sys.executable, "-c", "import sys; sys.exit(3)"])


def test_input_pipeline_rate_counts_the_delivered_clips():
    split = synthetic_split("development", 40, seed=1)
    rate = P.input_pipeline_rate(split, 8, num_workers=2, n_batches=6)
    assert rate["num_workers"] == 0  # cached frames are always read in the training process
    assert rate["batches"] == 6 and rate["clips"] == 48 and rate["clips_per_second"] > 0


def test_scale_settings_and_subsets():
    assert P.scale_settings("cpu")["scale"] == "miniature" and P.scale_settings("cuda")["scale"] == "teaching"
    assert P.scale_settings("cpu", smoke=True)["train_clips"] < P.scale_settings("cpu")["train_clips"]
    assert P.scale_settings("cpu", batch_size=16, epochs=None)["batch_size"] == 16
    assert P.scale_settings("cpu", scale="teaching")["train_clips"] is None
    with pytest.raises(UserError, match="teaching or miniature"):
        P.scale_settings("cpu", scale="huge")
    data = tiny_training_data()
    small = P.subset_data(data, 10, 4, None)
    assert (small.train.n_clips, small.val.n_clips, small.test.n_clips) == (10, 4, 16)
    assert small.fingerprint == data.fingerprint
    shuffled = P.subset_data(data, like=P.subset_data(data, 3, 3, 3))
    assert shuffled.train.clip_ids == ["c0", "c1", "c2"]


def test_verdicts_are_made_from_the_numbers():
    pipe = [{"num_workers": 0, "clips_per_second": 5.0}, {"num_workers": 2, "clips_per_second": 50.0}]
    text = P.pipeline_verdict(pipe, 10.0)
    assert "0 workers: 5 clips/s delivered, the input pipeline limits" in text
    assert "2 workers: 50 clips/s delivered, the model limits (5.0x" in text
    assert P.finetune_verdict({"t2a_mAP@10": 20.0}, {"t2a_mAP@10": 25.5}).startswith("Fine-tuning paid here")
    assert "+5.50 points" in P.finetune_verdict({"t2a_mAP@10": 20.0}, {"t2a_mAP@10": 25.5})
    assert P.finetune_verdict({"t2a_mAP@10": 20.0}, {"t2a_mAP@10": 10.0}).startswith("Fine-tuning did not pay")
    assert "did not change" in P.finetune_verdict({"t2a_mAP@10": 20.0}, {"t2a_mAP@10": 20.4})


def test_memory_estimate_per_batch_and_the_largest_batch_that_fits():
    from hybridlib import gpu_plan
    from hybridlib.config import experiments_dir, load_config

    m = load_config(experiments_dir() / "hybrid" / "clotho-late-os.yaml").model_config()
    sizes = [gpu_plan.training_memory_gb(m, b, 30.0, 17, 20) for b in (8, 16, 32)]
    assert sizes[2] - sizes[1] == pytest.approx(2 * (sizes[1] - sizes[0]))  # linear in the batch
    assert gpu_plan.training_memory_gb(m, 16, 30.0, 17, 20, amp=False) > sizes[1]
    for card in (8, 24, 80):
        b = gpu_plan.largest_batch(m, card, 30.0, 17, 20)
        assert gpu_plan.training_memory_gb(m, b, 30.0, 17, 20) <= 0.9 * card
        assert gpu_plan.training_memory_gb(m, b + 1, 30.0, 17, 20) > 0.9 * card
    assert gpu_plan.largest_batch(m, 1, 30.0, 17, 20) == 0  # not even the weights
    cfg = load_config(experiments_dir() / "hybrid" / "clotho-late-os.yaml")
    assert gpu_plan.estimate(cfg)["memory_gb"] == pytest.approx(gpu_plan.training_memory_gb(m, 32, 22.5, 17, 20))
    totals = gpu_plan.plan_totals("hybrid-table-1")
    rows = gpu_plan.reproduction_rows("hybrid-table-1")
    assert totals["rows"] == len(rows) and totals["gpu_hours"] == pytest.approx(
        sum(r["gpu_hours"] * r["seeds"] for r in rows))
    assert totals["max_memory_gb"] == max(r["memory_gb"] for r in rows)
    assert gpu_plan.plan_totals_line("hybrid-table-1").startswith(f"Totals: {len(rows)} rows")


def test_reproduce_plan_prints_the_totals(capsys):
    from hybridlib.cli import main

    assert main(["reproduce", "hybrid-table-1", "--plan"]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("Totals: 17 rows, 51 seed runs")


def test_paper_encoders_stay_bundled_on_a_cpu():
    assert P.paper_encoders("cpu") == {}


@pytest.mark.slow
def test_compiled_training_step_trains_as_the_plain_one(tmp_path):
    """``compile: true`` (torch.compile of the training step, inductor on the CPU) trains and evaluates; the
    checkpoints hold the plain model's keys, and the losses follow the uncompiled run's closely."""
    from hybridlib import runs
    from hybridlib.training import train

    results = {}
    for flag in (False, True):
        cfg = tiny_cfg(epochs=2, compile=flag)
        torch.manual_seed(0)
        results[flag] = train(cfg, tmp_path / str(flag), data=tiny_training_data(cfg), model=TinyModel(dropout=0.0),
                              progress=False)
    assert results[True].finished and runs.read_config(tmp_path / "True").compile
    plain, compiled = ([h["train_loss"] for h in results[f].history] for f in (False, True))
    assert compiled == pytest.approx(plain, rel=1e-3)
    assert results[True].model.state_dict().keys() == results[False].model.state_dict().keys()


def test_prepare_data_encodes_only_the_clips_asked_for():
    from hybridlib.config import teaching_config
    from hybridlib.features.prepare import prepare_data

    cfg = teaching_config("loss-nt-xent", smoke=True)
    small = prepare_data(cfg, progress=False, clips={"train": 5, "test": 3})
    whole = prepare_data(cfg, progress=False)
    assert (small.train.n_clips, small.val.n_clips, small.test.n_clips) == (5, whole.val.n_clips, 3)
    assert small.train.clip_ids == whole.train.clip_ids[:5] and small.fingerprint == whole.fingerprint
    assert small.info["clips_limit"] == {"train": 5, "test": 3}
    with pytest.raises(ValueError, match="roles must be among"):
        prepare_data(cfg, progress=False, clips={"training": 5})
