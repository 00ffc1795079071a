"""What reproducing each paper row costs on a GPU, and the README's reproduction table generated from the configs.

Estimates, not measurements: no GPU was available where this was written. How they are made:

* **Work** is counted in floating-point operations with ``torch.utils.flop_counter.FlopCounterMode`` on the
  real architectures (random weights; :func:`measure_costs` recomputes :data:`COSTS`): the audio backbone's
  forward FLOPs per second of audio, the text encoder's per token. A training step costs three forwards
  (forward + backward) of every *trained* encoder for each caption-clip pair (the clip's audio, the caption,
  and for metadata rows the clip's metadata text); a frozen encoder runs once per clip/text to fill the cache
  (``frozen_mode: eval``) or one forward per pair (``frozen_mode: train``). Validation runs every epoch, the
  test split once. Clip lengths and token counts are the datasets' typical values (:data:`DATASETS`).
* **Time** = work / :data:`ASSUMED_TFLOPS` (10 TFLOP/s sustained with mixed precision: a few percent of a
  current data-centre GPU's fp16 peak, since depthwise convolutions and short sequences are memory-bound and
  decoding audio takes its share). Calibrate with ``benchmarks/gpu_check.py``, which prints the sustained
  TFLOP/s measured on your GPU: the hours scale by ``10 / yours``.
* **Memory** = 16 bytes per trained parameter (fp32 weights, gradients, two Adam moments), 4 per frozen
  parameter on the GPU, plus activations kept for the backward pass: measured per second of audio and per
  token (fp32, train mode, :data:`COSTS`), halved for fp16 autocast, times the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from hybridlib.config import TrainConfig

ASSUMED_TFLOPS = 10.0
# FlopCounterMode on CPU, train mode, random weights (hybridlib.gpu_plan.measure_costs): forward GFLOP per second
# of 32 kHz audio (10-s clip) or per token (8 x 20 tokens), activations saved for backward in MB (fp32, weights
# excluded), parameters in millions
COSTS: dict[str, dict[str, float]] = {
    "efficientat-mn40": {"gflops": 1.614, "act_mb": 44.66, "params_m": 68.43},
    "panns-resnet38": {"gflops": 4.894, "act_mb": 25.34, "params_m": 74.87},
    "bert-base-uncased": {"gflops": 0.1706, "act_mb": 0.7045, "params_m": 108.89},
    "bert-large-uncased": {"gflops": 0.6059, "act_mb": 1.870, "params_m": 334.09},
}
# heads (pooling, fusion, projections): small next to the encoders; counted from the built model when needed
HEAD_PARAMS_M = 20.0
# The CPU track (experiments/clotho-cpu: frozen sfx-cnn + MiniLM, cached features, batch 32, frame_stride 2, one
# thread): seconds per optimiser step by fusion and per validation pass at Clotho's size, measured on 2026-12-07 with
# `benchmarks/bench_training.py --track clotho-cpu --threads 1 2` on a rehearsal with Clotho's clip lengths (15-30 s)
# on the 2-core development machine while other jobs kept its load at 4-5 (a quiet machine is faster)
CPU_COSTS: dict = {"step_seconds": {"none": 0.033, "metadata-only": 0.0034, "late": 0.0285, "mid": 0.035},
                   "validation_seconds": 0.6}


@dataclass(frozen=True)
class DatasetFigures:
    """Split sizes and typical lengths of a dataset (``tokens``: a caption; ``meta_tokens``: its metadata text)."""

    name: str
    clips: dict
    captions: dict
    seconds: float
    tokens: int
    meta_tokens: int
    source: str


DATASETS: dict[str, DatasetFigures] = {
    "clotho": DatasetFigures("ClothoV2.1", {"train": 3839, "val": 1045, "test": 1045},
                             {"train": 19195, "val": 5225, "test": 5225}, 22.5, 17, 20,
                             "15-30 s clips (22.5 s assumed), 5 captions of 8-20 words, FreeSound keywords (OS)"),
    "audiocaps": DatasetFigures("AudioCaps", {"train": 49838, "val": 495, "test": 975},
                                {"train": 49838, "val": 2475, "test": 4875}, 10.0, 13, 6,
                                "10 s clips, 1 (train) / 5 captions, AudioSet class names (CS)"),
    "wavcaps-fs": DatasetFigures("WavCaps FreeSound", {"train": 262300}, {"train": 262300}, 10.0, 20, 20,
                                 "one generated caption per clip, FreeSound tags; clip length assumed 10 s "
                                 "(the configs train on whole clips: check the 'duration' field of fsd_final.json)"),
}


def _text_cost(name: str) -> dict:
    return COSTS.get(name, COSTS["bert-base-uncased"])


def estimate(cfg: TrainConfig) -> dict:
    """``{"gpu_hours", "memory_gb", "train_pairs", "tflop"}`` of one seed of ``cfg`` (see the module docstring)."""
    m = cfg.model_config()
    audio, text = COSTS.get(m.audio_backbone), _text_cost(m.text_encoder)
    bench = DATASETS[cfg.benchmark]
    train = [DATASETS[d] for d in cfg.datasets]
    uses_meta = m.fusion in ("late", "mid", "metadata-only")
    meta_texts = 1 if uses_meta else 0

    def fwd(ds: DatasetFigures, which: str) -> float:  # forward GFLOP of one pair
        a = audio["gflops"] * ds.seconds if (audio and m.uses_audio) else 0.0
        t = text["gflops"] * ds.tokens
        mt = text["gflops"] * ds.meta_tokens * meta_texts
        return {"audio": a, "text": t + mt}[which]

    total = 0.0
    pairs = sum(ds.captions["train"] for ds in train)
    for ds in train:
        n = ds.captions["train"]
        for which, trained in (("audio", m.audio_trainable), ("text", m.text_trainable)):
            if trained:
                total += 3 * n * fwd(ds, which) * cfg.epochs
            elif m.frozen_mode == "train":
                total += n * fwd(ds, which) * cfg.epochs
            else:  # cached once
                total += ds.clips["train"] * fwd(ds, which) if which == "audio" else n * fwd(ds, which)
    val = bench.clips["val"] * fwd(bench, "audio") + bench.captions["val"] * fwd(bench, "text")
    test = bench.clips["test"] * fwd(bench, "audio") + bench.captions["test"] * fwd(bench, "text")
    total += val * (cfg.epochs if (m.audio_trainable or m.text_trainable) else 1) + test
    hours = total * 1e9 / (ASSUMED_TFLOPS * 1e12) / 3600

    trained_params = (audio["params_m"] if audio and m.audio_trainable and m.uses_audio else 0) + \
        (text["params_m"] * (2 if not m.share_text_encoder and uses_meta else 1) if m.text_trainable else 0) + \
        HEAD_PARAMS_M
    frozen_params = (audio["params_m"] if audio and not m.audio_trainable and m.frozen_mode == "train" else 0) + \
        (text["params_m"] if not m.text_trainable and m.frozen_mode == "train" else 0)
    acts = 0.0  # kept for the backward pass: trained encoders only
    longest = max(train, key=lambda d: d.seconds)
    if audio and m.uses_audio and m.audio_trainable:
        acts += cfg.batch_size * longest.seconds * audio["act_mb"]
    if m.text_trainable:
        acts += cfg.batch_size * (longest.tokens + longest.meta_tokens * meta_texts) * text["act_mb"]
    memory = (trained_params * 16 + frozen_params * 4) / 1e3 + 0.5 * acts / 1e3
    if m.audio_cached and audio:  # the frozen backbone fills the cache first (batches of 8 clips, forward only)
        memory = max(memory, audio["params_m"] * 4 / 1e3 + 8 * longest.seconds * audio["act_mb"] * 0.5 / 1e3)
    return {"gpu_hours": hours, "memory_gb": memory, "train_pairs": pairs, "tflop": total / 1e3}


def _round(x: float) -> str:
    if x < 0.1:
        return "<0.1"
    return f"~{x:.0f}" if x >= 10 else f"~{x:.1f}"


def table_of(row: str) -> str:
    """The first table of :data:`hybridlib.reproduce.TABLES` listing ``row`` (``all`` when none does)."""
    from hybridlib.reproduce import ALL, TABLES

    return next((name for name, t in TABLES.items() if row in t["rows"]), ALL)


def reproduction_rows(table: str = "all") -> list[dict]:
    """One dict per row of ``table``: paper row, config, command, epochs, data, estimate, where metrics land."""
    from hybridlib.config import load_config
    from hybridlib.reproduce import table_entries

    rows = []
    for entry in table_entries(table):
        cfg = load_config(entry.config)
        est = estimate(cfg)
        data = " + ".join(DATASETS[d].name for d in cfg.datasets)
        if cfg.benchmark not in cfg.datasets:
            data += f" (tested on {DATASETS[cfg.benchmark].name})"
        kinds = {d: (cfg.metadata_by_dataset.get(d) or cfg.model_config().metadata_kind) for d in cfg.datasets}
        if cfg.model_config().fusion in ("late", "mid"):
            data += ", metadata " + "/".join(sorted(set(kinds.values()))).upper()
        seeds = " ".join(map(str, cfg.seeds))
        rel = entry.config.relative_to(entry.config.parents[2])
        rows.append({
            "row": entry.row, "config": str(rel), "name": cfg.name,
            "command": f".venv/bin/python -m hybridlib reproduce {table_of(entry.row) if table == 'all' else table} "
                       f"--rows {cfg.name} --seeds {seeds}",
            "epochs": cfg.epochs, "data": data, "gpu_hours": est["gpu_hours"], "memory_gb": est["memory_gb"],
            "seeds": len(cfg.seeds),
            "metrics": f"runs/reproduce/{cfg.name}/metrics-{cfg.splits()[2]}.json",
        })
    return rows


def steps_per_epoch(cfg: TrainConfig) -> int:
    """Optimiser steps of one epoch of ``cfg`` on its benchmark's full training split (:data:`DATASETS`; FS rows
    lose the caption that became the description; ``captions_per_clip``; the last incomplete batch dropped)."""
    bench = DATASETS[cfg.benchmark]
    clips, captions = bench.clips["train"], bench.captions["train"]
    m = cfg.model_config()
    if m.metadata_kind == "fs" and m.fusion in ("late", "mid", "metadata-only"):
        captions -= clips  # the FS protocol moves one caption per clip to the description
    if cfg.captions_per_clip is not None:
        captions = min(captions, cfg.captions_per_clip * clips)
    return captions // cfg.batch_size


def cpu_estimate(cfg: TrainConfig) -> dict:
    """``{"steps", "cpu_minutes"}`` of one seed of a CPU-track row (cached frozen features): its optimiser steps
    (:func:`steps_per_epoch` x epochs) times the step time of :data:`CPU_COSTS`, plus a validation pass per epoch
    and the final evaluation. An estimate from measured step times, not a measurement of the row."""
    steps = steps_per_epoch(cfg) * cfg.epochs
    seconds = (steps * CPU_COSTS["step_seconds"][cfg.model_config().fusion]
               + (cfg.epochs + 1) * CPU_COSTS["validation_seconds"])
    return {"steps": steps, "cpu_minutes": seconds / 60}


def cpu_table_markdown(table: str) -> str:
    """The plan of a CPU track (:data:`hybridlib.reproduce.TABLES` entries with a ``config_dir``): per row its
    command, epochs x seeds, optimiser steps and estimated CPU minutes per seed (:func:`cpu_estimate`)."""
    from hybridlib.config import load_config
    from hybridlib.reproduce import TABLES, table_entries

    lines = [f"{TABLES[table]['title']}; {TABLES[table]['setting']}. Steps and CPU minutes per seed are estimates "
             "(steps x the step time measured on Clotho-length clips, hybridlib.gpu_plan.CPU_COSTS), after the features "
             "are extracted once (`extract`).", "",
             "| row | paper row (for reference) | command (config) | epochs x seeds | steps / seed | "
             "est. CPU min / seed | metrics |", "|---|---|---|---|---|---|---|"]
    for entry in table_entries(table):
        cfg = load_config(entry.config)
        est = cpu_estimate(cfg)
        rel = entry.config.relative_to(entry.config.parents[2])
        ref = TABLES[table].get("reference", {}).get(entry.name)
        lines.append(f"| `{entry.name}` | {f'`{ref}`' if ref else '-'} | `.venv/bin/python -m "
                     f"hybridlib reproduce {table} --rows {entry.name} --seeds {' '.join(map(str, cfg.seeds))}` "
                     f"(`{rel}`) | {cfg.epochs} x {len(cfg.seeds)} | {est['steps']:,} | {_round(est['cpu_minutes'])} | "
                     f"`runs/reproduce/{entry.name}/metrics-{cfg.splits()[2]}.json` |")
    return "\n".join(lines) + "\n"


def reproduction_table_markdown(table: str = "all") -> str:
    """The README's reproduction table (a Markdown table) for ``table``; see the module docstring for the
    estimates. A CPU track gets its own plan (:func:`cpu_table_markdown`)."""
    from hybridlib.reproduce import TABLES

    if "config_dir" in TABLES.get(table, {}):
        return cpu_table_markdown(table)
    lines = ["| paper row | command (config) | epochs x seeds | data | est. GPU h / seed | est. GPU GB | metrics |",
             "|---|---|---|---|---|---|---|"]
    for r in reproduction_rows(table):
        lines.append(f"| `{r['row']}` | `{r['command']}` (`{r['config']}`) | {r['epochs']} x {r['seeds']} | "
                     f"{r['data']} | {_round(r['gpu_hours'])} | {_round(r['memory_gb'])} | `{r['metrics']}` |")
    return "\n".join(lines) + "\n"


def measure_costs() -> dict[str, dict[str, float]]:
    """Recompute :data:`COSTS` (FlopCounterMode and saved-tensor sizes on CPU; takes about a minute)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hybridlib.models.audio import build_audio_backbone
    from hybridlib.models.text import BERT_CONFIGS

    def measure(module, fn):
        params = {p.untyped_storage().data_ptr() for p in module.parameters()}
        seen: set = set()
        saved = [0]

        def pack(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in params and ptr not in seen:
                seen.add(ptr)
                saved[0] += t.untyped_storage().nbytes()
            return t

        with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        return counter.get_total_flops(), saved[0]

    out = {}
    for name in ("efficientat-mn40", "panns-resnet38"):
        model = build_audio_backbone(name, pretrained=False).train()
        flops, act = measure(model, lambda m=model: m(torch.randn(1, 32000 * 10)))
        out[name] = {"gflops": flops / 1e10, "act_mb": act / 1e7,
                     "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
    from transformers import BertConfig, BertModel

    for name, config in BERT_CONFIGS.items():
        model = BertModel(BertConfig(**config), add_pooling_layer=False).train()
        ids = torch.randint(0, 30000, (8, 20))
        flops, act = measure(model, lambda m=model, x=ids: m(input_ids=x).last_hidden_state)
        out[name] = {"gflops": flops / 160e9, "act_mb": act / 160e6,
                     "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
    return out
