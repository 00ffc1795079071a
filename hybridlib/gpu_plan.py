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
# FlopCounterMode on CPU, train mode, random weights (hybridlib.gpu_plan.measure_costs; sfx-cnn and MiniLM: their
# bundled weights): forward GFLOP per second of audio at the backbone's rate (10-s clip) or per token (8 x 20 tokens), activations saved for backward in MB (fp32, weights
# excluded), parameters in millions
COSTS: dict[str, dict[str, float]] = {
    "efficientat-mn40": {"gflops": 1.614, "act_mb": 44.66, "params_m": 68.43},
    "panns-resnet38": {"gflops": 4.894, "act_mb": 25.34, "params_m": 74.87},
    "bert-base-uncased": {"gflops": 0.1706, "act_mb": 0.7045, "params_m": 108.89},
    "bert-large-uncased": {"gflops": 0.6059, "act_mb": 1.870, "params_m": 334.09},
    # the bundled encoders (notebook 09 fine-tunes them at miniature scale): sfx-cnn reads 44.1 kHz audio
    "sfx-cnn": {"gflops": 1.679, "act_mb": 9.325, "params_m": 4.686},
    "minilm": {"gflops": 0.02142, "act_mb": 0.1864, "params_m": 22.57},
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

    longest = max(train, key=lambda d: d.seconds)
    memory = training_memory_gb(m, cfg.batch_size, longest.seconds, longest.tokens, longest.meta_tokens)
    return {"gpu_hours": hours, "memory_gb": memory, "train_pairs": pairs, "tflop": total / 1e3}


def _memory_parts(m, seconds: float, tokens: int, meta_tokens: int = 0, amp: bool = True,
                  head_params_m: float = HEAD_PARAMS_M) -> tuple[float, float]:
    """``(fixed MB, MB per example)`` of training ``m`` (a ModelConfig): see :func:`training_memory_gb`."""
    audio, text = COSTS.get(m.audio_backbone), _text_cost(m.text_encoder)
    uses_meta = m.fusion in ("late", "mid", "metadata-only")
    meta_texts = 1 if uses_meta else 0
    trained_params = (audio["params_m"] if audio and m.audio_trainable and m.uses_audio else 0) + \
        (text["params_m"] * (2 if not m.share_text_encoder and uses_meta else 1) if m.text_trainable else 0) + \
        head_params_m
    frozen_params = (audio["params_m"] if audio and not m.audio_trainable and m.frozen_mode == "train" else 0) + \
        (text["params_m"] if not m.text_trainable and m.frozen_mode == "train" else 0)
    per_example = 0.0  # activations kept for the backward pass: trained encoders only
    if audio and m.uses_audio and m.audio_trainable:
        per_example += seconds * audio["act_mb"]
    if m.text_trainable:
        per_example += (tokens + meta_tokens * meta_texts) * text["act_mb"]
    return trained_params * 16 + frozen_params * 4, per_example * (0.5 if amp else 1.0)


def training_memory_gb(m, batch_size: int, seconds: float, tokens: int, meta_tokens: int = 0,
                       amp: bool = True, head_params_m: float = HEAD_PARAMS_M) -> float:
    """Estimated memory (GB) of training ``m`` (a :class:`~hybridlib.models.config.ModelConfig`) at
    ``batch_size`` on clips of ``seconds`` and texts of ``tokens`` (metadata texts ``meta_tokens``): 16 bytes
    per trained parameter (fp32 weights, gradients, two Adam moments), 4 per frozen one kept in train mode,
    plus the activations saved for the backward pass (:data:`COSTS`, fp32; halved under ``amp``). With a
    cached frozen backbone, at least what filling the cache takes (8 clips forward). ``head_params_m``: the
    heads' parameters in millions (:data:`HEAD_PARAMS_M` for the papers' rows; the teaching heads are smaller)."""
    fixed, per_example = _memory_parts(m, seconds, tokens, meta_tokens, amp, head_params_m)
    memory = (fixed + batch_size * per_example) / 1e3
    audio = COSTS.get(m.audio_backbone)
    if m.audio_cached and audio:  # the frozen backbone fills the cache first (batches of 8 clips, forward only)
        memory = max(memory, audio["params_m"] * 4 / 1e3 + 8 * seconds * audio["act_mb"] * 0.5 / 1e3)
    return memory


def largest_batch(m, card_gb: float, seconds: float, tokens: int, meta_tokens: int = 0, amp: bool = True,
                  headroom: float = 0.9) -> int:
    """The largest batch whose :func:`training_memory_gb` stays within ``headroom`` of a card of ``card_gb``
    (the rest: CUDA context, allocator fragmentation); 0 when not even the weights fit."""
    fixed, per_example = _memory_parts(m, seconds, tokens, meta_tokens, amp)
    room = card_gb * headroom * 1e3 - fixed
    if room <= 0:
        return 0
    return int(room // per_example) if per_example > 0 else 1_000_000


def step_flops(batch: dict, cfg: TrainConfig, model) -> float:
    """Counted FLOPs of one training step of ``batch``: three forwards (forward + backward) of each trained
    encoder on the batch's audio seconds and tokens (:data:`COSTS`; heads not counted)."""
    from pathlib import Path

    from hybridlib.models.audio import backbone_sample_rate

    m = cfg.model_config()
    total = 0.0
    if m.audio_trainable and "waveform" in batch and m.audio_backbone in COSTS:
        seconds = float(batch["lengths"].sum()) / backbone_sample_rate(m.audio_backbone)
        total += COSTS[m.audio_backbone]["gflops"] * seconds
    if m.text_trainable and getattr(model, "text_encoder", None) is not None:
        texts = list(batch.get("captions", [])) + [t for t in batch.get("metadata_text", []) if t]
        tokens = sum(model.text_encoder.token_counts(texts))
        total += _text_cost(Path(m.text_encoder).name)["gflops"] * tokens
    return 3 * total * 1e9


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


def plan_totals(table: str = "all") -> dict:
    """Totals of a GPU table's plan (:func:`reproduction_rows`): rows, seed runs, estimated GPU hours of all seeds
    of all rows (at :data:`ASSUMED_TFLOPS`), the most memory one row asks for, and that row."""
    rows = reproduction_rows(table)
    if not rows:
        return {"rows": 0, "seed_runs": 0, "gpu_hours": 0.0, "max_memory_gb": 0.0, "max_memory_row": None}
    biggest = max(rows, key=lambda r: r["memory_gb"])
    return {"rows": len(rows), "seed_runs": sum(r["seeds"] for r in rows),
            "gpu_hours": sum(r["gpu_hours"] * r["seeds"] for r in rows),
            "max_memory_gb": biggest["memory_gb"], "max_memory_row": biggest["row"]}


def plan_totals_line(table: str = "all") -> str:
    """One line under ``reproduce --plan``: :func:`plan_totals` in words."""
    t = plan_totals(table)
    return (f"Totals: {t['rows']} rows, {t['seed_runs']} seed runs, {_round(t['gpu_hours'])} GPU hours at "
            f"{ASSUMED_TFLOPS:g} TFLOP/s sustained (benchmarks/gpu_check.py measures yours: scale by 10 / yours); "
            f"the largest row needs {_round(t['max_memory_gb'])} GB ({t['max_memory_row']}).")


def measure_costs(names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Recompute :data:`COSTS` (FlopCounterMode and saved-tensor sizes on CPU; about a minute for all of them):
    audio backbones on a 10-s clip at their own sample rate, text encoders on 8 x 20 tokens."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hybridlib.models.audio import backbone_sample_rate, build_audio_backbone
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
    for name in names or list(COSTS):
        if name in ("efficientat-mn40", "panns-resnet38", "sfx-cnn"):
            model = build_audio_backbone(name, pretrained=name == "sfx-cnn").train()
            rate = backbone_sample_rate(name)
            flops, act = measure(model, lambda m=model, r=rate: m(torch.randn(1, r * 10)))
            out[name] = {"gflops": flops / 1e10, "act_mb": act / 1e7,
                         "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
            continue
        ids = torch.randint(0, 30000, (8, 20))
        if name in BERT_CONFIGS:
            from transformers import BertConfig, BertModel

            model = BertModel(BertConfig(**BERT_CONFIGS[name]), add_pooling_layer=False).train()
        else:
            from hybridlib.models.text import build_text_encoder

            model = build_text_encoder(name, trainable=True).model.train()
        flops, act = measure(model, lambda m=model, x=ids: m(input_ids=x).last_hidden_state)
        out[name] = {"gflops": flops / 160e9, "act_mb": act / 160e6,
                     "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
    return out
