"""The ingredient report: what a training run actually had in effect, written as ``ingredients.json``.

A config *declares* a paper row's ingredients; this report *measures* them on the built model and the
prepared data, so a row that silently trains something else (no metadata reached the model, SpecAugment
off, encoders not frozen, another text preprocessing) shows it in its run folder. Training writes it at
the start of every invocation (:func:`hybridlib.training.train`); the rehearsal test asserts each config's
declared ingredients against it.

Sections:

* ``data``: datasets and splits (clips, captions), ``metadata_kind`` per dataset, ``metadata_coverage``
  (fraction of clips with metadata text, by role, as the model sees it), per loaded split its metadata kind
  and coverage, the FS protocol's counts (descriptions used, queries removed, single-caption clips) and any
  deliberate metadata degradation. Which clips were loaded, missing or excluded (and why) is the run's
  ``data_report.json`` (one home; ``clips_and_exclusions`` points there).
* ``audio`` / ``text``: encoder, trainable or frozen (and what "frozen" means: ``frozen_mode``), cached or
  run on every batch, weights (checkpoint; ``standin`` for the rehearsal's random weights), SpecAugment of
  every module while training (enabled / active) and the feature-level masking of cached frames, text
  preprocessing mode, max tokens (``max_length`` the tokenizer truncates at), dropout and architecture.
* ``parameters``: total and trainable parameters per module (audio backbone, text encoders, the rest).
* ``input_pipeline``: cached frames or waveforms, the DataLoader workers in effect, the waveform cache.
* ``optimisation``: optimiser, loss, batch size (the global batch whatever the number of processes) with the
  global batch a step actually had, the processes and each one's slice (:func:`batch_report`), gradient
  clipping, AMP; ``schedule``: steps and the learning rate at the first step, the peak and the last step (the
  configured schedule stepped through on a stand-in optimiser); ``selection``: metric and tie rule.
"""

from __future__ import annotations

import torch

from hybridlib.config import TrainConfig
from hybridlib.util.modules import module_mode


def count_parameters(module: torch.nn.Module | None) -> dict[str, int]:
    """``{"total", "trainable"}`` parameter counts of ``module`` (zeros for None)."""
    if module is None:
        return {"total": 0, "trainable": 0}
    params = list(module.parameters())
    return {"total": sum(p.numel() for p in params), "trainable": sum(p.numel() for p in params if p.requires_grad)}


def parameter_report(model: torch.nn.Module) -> dict[str, dict[str, int]]:
    """Parameters per module: ``audio_backbone``, ``text_encoder``, ``metadata_text_encoder`` (submodules of the
    model, absent ones 0), ``other`` (pooling, fusion, projections) and ``all``."""
    named = ("audio_backbone", "text_encoder", "metadata_text_encoder")
    out = {name: count_parameters(getattr(model, name, None)) for name in named}
    inside = {id(p) for name in named if getattr(model, name, None) is not None
              for p in getattr(model, name).parameters()}
    rest = [p for p in model.parameters() if id(p) not in inside]
    out["other"] = {"total": sum(p.numel() for p in rest), "trainable": sum(p.numel() for p in rest if p.requires_grad)}
    out["all"] = count_parameters(model)
    return out


def schedule_report(cfg: TrainConfig, steps_per_epoch: int) -> dict:
    """The learning rate at the first step, its peak and the last step of ``cfg``'s schedule (stepped through)."""
    from hybridlib.training.optim import build_scheduler

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=cfg.lr)  # only the lr bookkeeping matters
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    total = cfg.epochs * steps_per_epoch
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    peak = max(range(len(lrs)), key=lrs.__getitem__) if lrs else 0
    return {"name": cfg.schedule, "epochs": cfg.epochs, "steps_per_epoch": steps_per_epoch, "total_steps": total,
            "warmup_epochs": cfg.warmup_epochs, "lr_first_step": lrs[0] if lrs else None,
            "lr_peak": lrs[peak] if lrs else None, "peak_step": peak + 1 if lrs else None,
            "lr_last_step": lrs[-1] if lrs else None, "lr_min": cfg.lr_min,
            "step_size_epochs": cfg.step_size if cfg.schedule == "step" else None,
            "gamma": cfg.gamma if cfg.schedule == "step" else None}


def _spec_augment(model: torch.nn.Module, cfg: TrainConfig, mcfg) -> dict:
    from hybridlib.models.audio.frontends import spec_augment_state

    with module_mode(model, training=True):  # what a training step sees
        modules = spec_augment_state(model)
    frame_masking = bool(cfg.spec_augment and mcfg.audio_cached and (cfg.frame_time_mask or cfg.frame_channel_mask))
    return {"config": cfg.spec_augment, "modules": modules,
            "active": any(m["active"] for m in modules.values()) or frame_masking,
            "cached_frame_masking": {"active": frame_masking, "time_mask": cfg.frame_time_mask,
                                     "channel_mask": cfg.frame_channel_mask}}


def _text_architecture(encoder, name: str) -> dict:
    from hybridlib.models.text import describe_text_model, text_model_summary

    if encoder is not None and hasattr(encoder, "model"):
        return text_model_summary(encoder)
    return describe_text_model(name)


def _data_report(cfg: TrainConfig, data) -> dict:
    from hybridlib.features.prepare import metadata_kind_for

    roles = {"train": data.train, "val": data.val, "test": data.test}
    kinds = {d: metadata_kind_for(cfg, d) for d in dict.fromkeys([*cfg.datasets, cfg.benchmark])}
    uses_metadata = any(k is not None for k in kinds.values())
    coverage = {role: (float(split.has_metadata.float().mean()) if uses_metadata and split.n_clips else None)
                for role, split in roles.items() if split is not None}
    # per loaded split only what the row's ingredients need; clip counts, missing files and every excluded
    # clip with its reason are in the run's data_report.json (the prepared data's info), not repeated here
    metadata = data.info.get("metadata", {})
    loaded = []
    for r in data.info.get("load_reports", []):
        sources = r.get("sources") or {}
        meta = metadata.get(f"{r.get('dataset')}/{r.get('split')}", {})
        loaded.append({"dataset": r.get("dataset"), "split": r.get("split"),
                       "metadata_kind": meta.get("metadata_kind"), "metadata_coverage": meta.get("metadata_coverage"),
                       "fs_protocol": sources.get("fs_protocol"), "degradation": sources.get("degradation")})
    fs = [x for x in loaded if x["fs_protocol"]]
    return {"fingerprint": data.fingerprint, "datasets": cfg.datasets, "benchmark": cfg.benchmark,
            "splits": {role: {"name": s.name, "clips": s.n_clips, "captions": s.n_captions}
                       for role, s in roles.items() if s is not None},
            "metadata_kind": kinds, "metadata_coverage": coverage, "loaded": loaded,
            "fs_protocol": {"descriptions": sum(x["fs_protocol"]["descriptions"] for x in fs),
                            "queries_removed": sum(x["fs_protocol"]["queries_removed"] for x in fs),
                            "single_caption_clips": sum(x["fs_protocol"]["single_caption_clips"] for x in fs),
                            "seed": cfg.fs_seed} if fs else None,
            "metadata_degradation": cfg.metadata_degradation or None,
            "audioset_labels": data.info.get("settings", {}).get("audioset_labels"),
            "clips_and_exclusions": "data_report.json"}


def input_pipeline_report(cfg: TrainConfig, data, loader=None) -> dict:
    """How training batches reach the model: cached frames, or waveforms through the
    :class:`~hybridlib.features.loader.TrainingLoader` with its worker processes (in effect: cached frames are
    always read in-process) and the waveform cache."""
    frames = data.train.frames is not None
    return {"source": "cached frames" if frames else "waveforms",
            "num_workers": loader.num_workers if loader is not None else (0 if frames else cfg.num_workers),
            "num_workers_config": cfg.num_workers,
            "waveform_cache": None if frames else getattr(data.train, "waveform_cache", None) is not None,
            "pin_memory": loader.loader.pin_memory if loader is not None else None}


def batch_report(batch_size: int, epoch_captions: int, processes: int = 1) -> dict:
    """The contrastive batch a run used: ``batch_size`` (the config's, the global batch whatever the number of
    processes), ``global_batch`` (the captions of a full step: ``batch_size``, or the whole epoch when it has
    fewer), ``processes`` and ``batch_per_process`` (how the processes share a global batch, e.g. ``[6, 5]``)."""
    from hybridlib.features.splits import slice_sizes

    global_batch = min(batch_size, epoch_captions)
    return {"batch_size": batch_size, "epoch_captions": epoch_captions, "global_batch": global_batch,
            "processes": processes, "batch_per_process": slice_sizes(global_batch, processes)}


def ingredient_report(cfg: TrainConfig, model: torch.nn.Module, data, steps_per_epoch: int,
                      world_size: int = 1, loader=None) -> dict:
    """The report described in the module docstring, for ``model`` trained on ``data`` with ``cfg`` (``loader``:
    the :class:`~hybridlib.features.loader.TrainingLoader` delivering its batches)."""
    from hybridlib.models.audio.weights import is_standin

    mcfg = getattr(model, "cfg", None) or cfg.model_config()
    encoders = model.encoder_modules() if hasattr(model, "encoder_modules") else {}
    text = encoders.get("text")
    epoch_captions = data.train.n_epoch_captions(cfg.captions_per_clip)
    return {
        "name": cfg.name, "paper_row": cfg.paper_row, "seed": cfg.seed,
        "data": _data_report(cfg, data),
        "audio": {"backbone": mcfg.audio_backbone if mcfg.uses_audio else None, "trainable": mcfg.audio_trainable,
                  "frozen_mode": None if mcfg.audio_trainable else mcfg.frozen_mode, "cached": mcfg.audio_cached,
                  "checkpoint": mcfg.audio_checkpoint, "standin": is_standin(mcfg.audio_checkpoint),
                  "spec_augment": _spec_augment(model, cfg, mcfg)},
        "text": {"encoder": mcfg.text_encoder, "trainable": mcfg.text_trainable,
                 "frozen_mode": None if mcfg.text_trainable else mcfg.frozen_mode, "cached": mcfg.text_cached,
                 "shared_for_metadata": mcfg.share_text_encoder,
                 # read from the encoder the model runs when it has one (else what the cache was filled with)
                 "mode": getattr(text, "text_mode", mcfg.text_mode),
                 "max_tokens": getattr(text, "max_tokens", mcfg.text_max_tokens),
                 "max_length": getattr(text, "max_length", None),
                 "pooling": mcfg.text_pooling, "dropout_config": mcfg.text_dropout,
                 "tune_layers": mcfg.text_tune_layers, "train_captions": cfg.train_captions,
                 "architecture": _text_architecture(text, mcfg.text_encoder)},
        "model": {"fusion": mcfg.fusion, "metadata_kind": mcfg.metadata_kind, "pooling": mcfg.pooling,
                  "num_layers": mcfg.num_layers, "num_heads": mcfg.num_heads, "retrieval_dim": mcfg.retrieval_dim,
                  "missing_metadata": mcfg.missing_metadata},
        "parameters": parameter_report(model),
        "optimisation": {"optimizer": "adam", "lr": cfg.lr, "weight_decay": cfg.weight_decay, "loss": cfg.loss,
                         "loss_kwargs": cfg.loss_kwargs, **batch_report(cfg.batch_size, epoch_captions, world_size),
                         "captions_per_clip": cfg.captions_per_clip, "grad_clip": cfg.grad_clip,
                         "amp": cfg.amp, "max_audio_seconds": cfg.max_audio_seconds},
        "input_pipeline": input_pipeline_report(cfg, data, loader),
        "schedule": schedule_report(cfg, steps_per_epoch),
        "selection": {"metric": cfg.select_metric, "on_tie": cfg.select_on_tie},
    }


def ingredient_problems(cfg: TrainConfig, report: dict, min_coverage: float = 0.9) -> list[str]:
    """Where a run's ingredient ``report`` contradicts what ``cfg`` declares (empty: every ingredient holds).

    Checked: metadata reaches a metadata row on every split it loads (coverage >= ``min_coverage``) and never
    reaches a content-only one; the FS protocol ran for FS rows; frozen encoders have no trainable parameters
    and trained ones do (a separate metadata encoder too); SpecAugment is active exactly when the config asks
    for it and a backbone runs in train mode; the text preprocessing mode and max tokens of the encoder the
    model runs; the dropout of a trained text encoder; the schedule's peak and (warm-up cosine) its end.
    """
    from hybridlib.models.config import USES_METADATA

    mcfg = cfg.model_config()
    problems = []
    data, params = report["data"], report["parameters"]
    uses_metadata = mcfg.fusion in USES_METADATA
    for role, coverage in data["metadata_coverage"].items():
        if uses_metadata and (coverage is None or coverage < min_coverage):
            problems.append(f"metadata coverage of {role} is {coverage} (< {min_coverage}) for a {mcfg.fusion} row")
        if not uses_metadata and coverage is not None:
            problems.append(f"a content-only row reports metadata coverage {coverage} on {role}")
    for loaded in data["loaded"]:
        if loaded["metadata_kind"] is not None and (loaded["metadata_coverage"] or 0) < min_coverage:
            problems.append(f"{loaded['dataset']}/{loaded['split']}: {loaded['metadata_kind']} coverage "
                            f"{loaded['metadata_coverage']} (< {min_coverage})")
    kinds = set(data["metadata_kind"].values())
    if "fs" in kinds and (not data["fs_protocol"] or data["fs_protocol"]["descriptions"] == 0
                          or data["fs_protocol"]["queries_removed"] != data["fs_protocol"]["descriptions"]):
        problems.append(f"FS row without the FS protocol in effect: {data['fs_protocol']}")
    if "fs" not in kinds and data["fs_protocol"]:
        problems.append("the FS protocol ran for a row without FS metadata")
    for role, name, trainable in (("audio", "audio_backbone", mcfg.audio_trainable and mcfg.uses_audio),
                                  ("text", "text_encoder", mcfg.text_trainable)):
        n = params[name]["trainable"]
        if trainable and n == 0:
            problems.append(f"the {role} encoder should be trained but has no trainable parameters")
        if not trainable and n != 0:
            problems.append(f"the {role} encoder should be frozen but has {n} trainable parameters")
    separate = mcfg.text_trainable and not mcfg.share_text_encoder and uses_metadata
    if separate != (params["metadata_text_encoder"]["trainable"] > 0):
        problems.append(f"separate metadata text encoder expected: {separate}, trainable parameters "
                        f"{params['metadata_text_encoder']['trainable']}")
    runs_in_train_mode = mcfg.uses_audio and (mcfg.audio_trainable or mcfg.frozen_mode == "train")
    spec = report["audio"]["spec_augment"]
    if cfg.spec_augment and runs_in_train_mode and not spec["active"]:
        problems.append("spec_augment is on but no SpecAugment is active in training")
    if not cfg.spec_augment and spec["active"]:
        problems.append("spec_augment is off but SpecAugment is active: " + ", ".join(
            name for name, m in spec["modules"].items() if m["active"]))
    text = report["text"]
    if text["mode"] != mcfg.text_mode or text["max_tokens"] != mcfg.text_max_tokens:
        problems.append(f"text preprocessing {text['mode']}/{text['max_tokens']} tokens, declared "
                        f"{mcfg.text_mode}/{mcfg.text_max_tokens}")
    if mcfg.text_trainable and mcfg.text_dropout is not None and \
            text["architecture"].get("hidden_dropout") != mcfg.text_dropout:
        problems.append(f"text dropout {text['architecture'].get('hidden_dropout')}, declared {mcfg.text_dropout}")
    sched = report["schedule"]
    if sched["total_steps"] and abs(sched["lr_peak"] - cfg.lr) > 1e-12 * cfg.lr + 1e-15:
        problems.append(f"the schedule peaks at {sched['lr_peak']}, declared lr {cfg.lr}")
    warm = round(cfg.warmup_epochs * sched["steps_per_epoch"])
    if cfg.schedule == "warmup-cosine" and sched["total_steps"] > warm + 1 and \
            abs(sched["lr_last_step"] - cfg.lr_min) > 1e-3 * cfg.lr_min:
        problems.append(f"the cosine ends at {sched['lr_last_step']}, declared lr_min {cfg.lr_min}")
    return problems
