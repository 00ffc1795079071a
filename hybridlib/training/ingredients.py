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
* ``audio`` / ``text``: encoder, trainable (measured: it has trainable parameters) or frozen (and what
  "frozen" means: ``frozen_mode``), cached (measured: the prepared split holds its features) or run on every
  batch, weights (checkpoint; ``standin`` for the rehearsal's random weights), SpecAugment of every module while
  training (enabled / active) and the feature-level masking of cached frames, text preprocessing mode, max
  tokens (``max_length`` the tokenizer truncates at), pooling, dropout and architecture.
* ``model``: what the built model has (:func:`model_report`): fusion, metadata path, audio pooling with its
  layers and heads as built, projections, retrieval width; nothing a model lacks (Mei et al.'s has no metadata
  and no transformer pooling).
* ``parameters``: total and trainable parameters per module (audio backbone, text encoders, the rest).
* ``input_pipeline``: cached frames or waveforms, the DataLoader workers in effect, the waveform cache.
* ``optimisation``: optimiser and its parameter groups' learning rates (built as training builds them), loss
  and the hyperparameters it runs with, batch size (the global batch whatever the number of processes) with the
  global batch a step actually had, the processes and each one's slice (:func:`batch_report`), gradient
  clipping, the device and ``amp`` in effect (CUDA and the config's ``amp``; ``amp_config``: what was asked);
  ``schedule``: steps and the learning rate at the first step, the peak and the last step (the configured
  schedule stepped through on a stand-in optimiser); ``selection``: metric and tie rule.

:func:`ingredient_problems` checks a report against its config and, for a paper row, against the paper's
settings (:func:`paper_differences`, :func:`hybridlib.paper.paper_settings`); deliberate deviations (the
rehearsal's overrides) are reported apart (:func:`deliberate_deviations`).
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


def amp_in_effect(cfg: TrainConfig, device: torch.device | str) -> bool:
    """Whether mixed precision runs: ``cfg.amp`` on a CUDA device, or on a CPU with ``amp_dtype: bfloat16``
    (the rule :func:`hybridlib.training.train` applies; float16 on a CPU is ignored: no gradient scaling there)."""
    kind = torch.device(device).type
    return bool(cfg.amp and (kind == "cuda" or (kind == "cpu" and cfg.amp_dtype == "bfloat16")))


def amp_precision(cfg: TrainConfig, device: torch.device | str):
    """The :class:`~hybridlib.training.performance.Precision` training runs with: ``cfg.amp_dtype`` when
    :func:`amp_in_effect`, else float32 (a GPU without bfloat16 asked for it: a UserError)."""
    from hybridlib.training.performance import precision

    return precision(cfg.amp_dtype if amp_in_effect(cfg, device) else "float32", device)


def _model_device(model: torch.nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _linear_out(module: torch.nn.Module | None) -> int | None:
    """Output width of the last ``nn.Linear`` in ``module`` (a projection into the retrieval space)."""
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)] if module is not None else []
    return linears[-1].out_features if linears else None


def _projection_kind(module: torch.nn.Module | None) -> str | None:
    if module is None:
        return None
    n = sum(isinstance(m, torch.nn.Linear) for m in module.modules())
    return "linear" if isinstance(module, torch.nn.Linear) else f"mlp ({n} linear layers)"


def pooling_report(model: torch.nn.Module) -> dict | None:
    """The audio pooling the built ``model`` has (read from its modules, not from the config): ``kind``
    (``transformer`` with its ``layers``, ``heads`` and ``width``; ``mean``/``max-mean`` with ``width``; Mei et al.'s
    parameter-free ``max-mean over frames``), or None when the model has no audio pooling (metadata-only)."""
    from hybridlib.models.pooling import MaxMeanPooling, MeanPooling, TransformerPooling

    module = getattr(model, "pooling", None)
    if module is None:
        module = getattr(getattr(model, "mid", None), "pooling", None)
    if isinstance(module, TransformerPooling):
        return {"kind": "transformer", "layers": len(module.layers),
                "heads": module.layers[0].self_attn.num_heads if len(module.layers) else None,
                "width": module.d_model}
    if isinstance(module, (MeanPooling, MaxMeanPooling)):
        return {"kind": "mean" if isinstance(module, MeanPooling) else "max-mean", "width": module.d_model}
    if module is not None:
        return {"kind": type(module).__name__}
    mcfg = getattr(model, "cfg", None)
    if mcfg is not None and mcfg.fusion == "mei":  # RetrievalModel.embed_items: masked max + mean of the frames
        return {"kind": "max-mean over frames (no parameters)", "width": mcfg.audio_dim}
    return None


def model_report(model: torch.nn.Module) -> dict:
    """What the built ``model`` has: fusion, whether metadata reaches it (and how a missing one is filled),
    its pooling (:func:`pooling_report`), projections and retrieval width. A field the model does not have is
    absent or None (a Mei et al. model has no metadata path and no transformer pooling)."""
    mcfg = getattr(model, "cfg", None)
    missing = getattr(model, "missing", None)
    mid = getattr(model, "mid", None)
    item = getattr(model, "item_proj", None)
    query = getattr(model, "query_proj", None)
    return {"fusion": getattr(mcfg, "fusion", None),
            "metadata": missing is not None,
            "missing_metadata": getattr(missing, "mode", None),
            "pooling": pooling_report(model),
            "item_projection": "linear (audio and metadata tokens)" if mid is not None else _projection_kind(item),
            "query_projection": "gated embedding units" if mid is not None else (
                "shared with items" if item is not None and query is None else _projection_kind(query)),
            "retrieval_dim": _linear_out(mid.audio_out if mid is not None else item)}


def loss_hyperparameters(cfg: TrainConfig) -> dict:
    """The hyperparameters the training loss runs with: its function's defaults with the config's
    ``loss_kwargs`` applied (:func:`hybridlib.losses.get_loss`)."""
    import inspect

    from hybridlib.losses import get_loss

    loss = get_loss(cfg.loss, **cfg.loss_kwargs)
    defaults = {p.name: p.default for p in inspect.signature(loss.fn).parameters.values()
                if p.default is not inspect.Parameter.empty and p.name != "same_item"}
    values = {**defaults, **loss.kwargs}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()
            if isinstance(v, (int, float, str, bool, list, tuple)) or v is None}


def _optimizer_groups(model: torch.nn.Module, cfg: TrainConfig) -> tuple[str, list[dict]]:
    from hybridlib.training.optim import build_optimizer

    try:
        optimizer = build_optimizer(model, cfg)  # as training builds it (no state before its first step)
    except ValueError:
        return "none", []
    return type(optimizer).__name__.lower(), [
        {"parameters": sum(p.numel() for p in g["params"]), "lr": g["lr"], "weight_decay": g["weight_decay"]}
        for g in optimizer.param_groups]


def ingredient_report(cfg: TrainConfig, model: torch.nn.Module, data, steps_per_epoch: int,
                      world_size: int = 1, loader=None) -> dict:
    """The report described in the module docstring, for ``model`` (already on its training device) trained on
    ``data`` with ``cfg`` (``loader``: the :class:`~hybridlib.features.loader.TrainingLoader` delivering its
    batches)."""
    from hybridlib.models.audio.weights import is_standin

    mcfg = getattr(model, "cfg", None) or cfg.model_config()
    encoders = model.encoder_modules() if hasattr(model, "encoder_modules") else {}
    text, audio = encoders.get("text"), encoders.get("audio")
    params = parameter_report(model)
    text_params = model.text_encoder_parameters() if hasattr(model, "text_encoder_parameters") else []
    epoch_captions = data.train.n_epoch_captions(cfg.captions_per_clip)
    device = _model_device(model)
    optimizer, groups = _optimizer_groups(model, cfg)
    train = data.train
    text_source = ("cached embeddings" if train.caption_emb is not None else
                   "cached lower-layer states" if train.caption_hidden is not None else "strings")
    return {
        "name": cfg.name, "paper_row": cfg.paper_row, "seed": cfg.seed,
        "data": _data_report(cfg, data),
        "audio": {"backbone": (getattr(audio, "name", None) or mcfg.audio_backbone) if mcfg.uses_audio else None,
                  # measured: trainable parameters in the backbone, frames read from the feature cache
                  "trainable": params["audio_backbone"]["trainable"] > 0,
                  "frozen_mode": None if mcfg.audio_trainable else mcfg.frozen_mode,
                  "cached": mcfg.uses_audio and train.frames is not None,
                  "checkpoint": mcfg.audio_checkpoint, "standin": is_standin(mcfg.audio_checkpoint),
                  "spec_augment": _spec_augment(model, cfg, mcfg)},
        "text": {"encoder": mcfg.text_encoder, "trainable": any(p.requires_grad for p in text_params),
                 "frozen_mode": None if mcfg.text_trainable else mcfg.frozen_mode,
                 "cached": text_source != "strings", "captions_as": text_source,
                 "shared_for_metadata": (params["metadata_text_encoder"]["total"] == 0
                                         and getattr(model, "metadata_text_top", None) is None)
                 if getattr(model, "missing", None) is not None else None,
                 # read from the encoder the model runs when it has one (else what the cache was filled with)
                 "mode": getattr(text, "text_mode", mcfg.text_mode),
                 "max_tokens": getattr(text, "max_tokens", mcfg.text_max_tokens),
                 "max_length": getattr(text, "max_length", None),
                 "pooling": getattr(text, "pooling", mcfg.text_pooling), "dropout_config": mcfg.text_dropout,
                 "tune_layers": mcfg.text_tune_layers, "train_captions": cfg.train_captions,
                 "architecture": _text_architecture(text, mcfg.text_encoder)},
        "model": model_report(model),
        "parameters": params,
        "optimisation": {"optimizer": optimizer, "param_groups": groups, "lr": cfg.lr,
                         "weight_decay": cfg.weight_decay, "loss": cfg.loss,
                         "loss_kwargs": cfg.loss_kwargs, "loss_hyperparameters": loss_hyperparameters(cfg),
                         **batch_report(cfg.batch_size, epoch_captions, world_size),
                         "captions_per_clip": cfg.captions_per_clip, "grad_clip": cfg.grad_clip,
                         # in effect (CUDA and cfg.amp), and what the config asked for
                         "device": str(device), "amp": amp_in_effect(cfg, device), "amp_config": cfg.amp,
                         "amp_dtype": amp_precision(cfg, device).name,
                         "max_audio_seconds": cfg.max_audio_seconds},
        "input_pipeline": input_pipeline_report(cfg, data, loader),
        "schedule": schedule_report(cfg, steps_per_epoch),
        "selection": {"metric": cfg.select_metric, "on_tie": cfg.select_on_tie},
    }


def ingredient_problems(cfg: TrainConfig, report: dict, min_coverage: float = 0.9,
                        deliberate: dict | None = None) -> list[str]:
    """Where a run's ingredient ``report`` contradicts what ``cfg`` declares or, for a paper row, the paper's
    settings (empty: every ingredient holds).

    Against the config: metadata reaches a metadata row on every split it loads (coverage >= ``min_coverage``)
    and never reaches a content-only one; the FS protocol ran for FS rows; frozen encoders have no trainable
    parameters and trained ones do (a separate metadata encoder too); SpecAugment is active exactly when the
    config asks for it and a backbone runs in train mode; the text preprocessing mode and max tokens of the
    encoder the model runs; the dropout of a trained text encoder; the schedule's peak and (warm-up cosine) its
    end. Against the paper (rows with a ``paper_row``): :func:`paper_differences`, except the ``deliberate``
    ones (:func:`deliberate_deviations`: e.g. the rehearsal's overrides, reported apart).
    """
    return _config_problems(cfg, report, min_coverage) + [
        d["text"] for d in paper_differences(cfg, report) if not _is_deliberate(d, cfg, deliberate)]


def _config_problems(cfg: TrainConfig, report: dict, min_coverage: float) -> list[str]:
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


def _same(ours, paper) -> bool:
    if isinstance(paper, float) or isinstance(ours, float):
        return ours is not None and paper is not None and abs(float(ours) - float(paper)) <= 1e-9 * abs(float(paper))
    if isinstance(paper, (list, tuple)) and isinstance(ours, (list, tuple)):
        return len(ours) == len(paper) and all(_same(a, b) for a, b in zip(ours, paper))
    return ours == paper


def paper_differences(cfg: TrainConfig, report: dict) -> list[dict]:
    """Where a paper row's run (``cfg.paper_row``) differs from the paper's settings
    (:func:`hybridlib.paper.paper_settings`), read from the run's ingredient ``report`` (what was in effect, not
    what the config says): ``[{"setting", "ours", "paper", "config", "text"}]``, ``config`` naming the config
    field that sets it (dotted for the model section). Empty for a row without a paper row.

    Compared: the contrastive batch over all processes (the config's batch, the global batch; in a report written
    before that rule, batch size x processes) and the largest batch an epoch can fill (``global_batch``), epochs, optimiser, the learning rates of every parameter
    group (peak) and the schedule (name, warm-up, end or steps), loss and the hyperparameters the paper states,
    captions per clip and epoch, max tokens and text preprocessing, the encoders (backbone, the text
    transformer's architecture, pretrained or stand-in weights, trained or frozen), SpecAugment, the benchmark,
    and per paper fusion, metadata kinds and a shared text encoder (hybrid) or gradient clipping, text dropout,
    retrieval width and selection (Mei et al.).
    """
    from hybridlib import paper
    from hybridlib.models.text import BERT_CONFIGS

    if not cfg.paper_row:
        return []
    try:
        want = paper.paper_settings(cfg.paper_row)
    except KeyError:
        return []
    if want is None:
        return []
    out: list[dict] = []

    def check(setting, ours, key, config, text=None):
        if key in want and not _same(ours, want[key]):
            out.append({"setting": setting, "ours": ours, "paper": want[key], "config": config,
                        "text": text or f"{setting} {ours!r} (paper: {want[key]!r})"})

    opt, sched, text, audio = report["optimisation"], report["schedule"], report["text"], report["audio"]
    params, data = report["parameters"], report["data"]
    # the config's batch is the global batch over all processes (``processes`` recorded); a report written before
    # that rule records ``world_size`` and a per-process batch
    processes = opt.get("processes", opt.get("world_size", 1))
    if "processes" in opt:
        global_batch, largest = opt["batch_size"], opt.get("global_batch")
    else:
        global_batch, largest = opt["batch_size"] * processes, opt.get("largest_batch")
    check("batch", global_batch, "batch_size", "batch_size",
          f"batch {global_batch} over {processes} process(es) (paper: {want['batch_size']})")
    if largest is not None and global_batch == want["batch_size"] and largest < want["batch_size"]:
        out.append({"setting": "largest batch", "ours": largest, "paper": want["batch_size"],
                    "config": "data_root", "text": f"an epoch fills a batch of at most {largest} "
                    f"pairs ({opt['epoch_captions']} captions; paper: {want['batch_size']})"})
    check("epochs", sched["epochs"], "epochs", "epochs")
    check("optimizer", opt.get("optimizer"), "optimizer", "optimizer")
    for i, group in enumerate(opt.get("param_groups") or [{"lr": sched["lr_peak"]}]):
        check("learning rate" if i == 0 else "text learning rate", group["lr"], "lr", "lr" if i == 0 else "text_lr")
    check("schedule", sched["name"], "schedule", "schedule")
    check("warm-up epochs", sched["warmup_epochs"], "warmup_epochs", "warmup_epochs")
    if sched["name"] == "warmup-cosine":
        check("final learning rate", sched["lr_min"], "lr_min", "lr_min")
    if sched["name"] == "step":
        check("step size (epochs)", sched["step_size_epochs"], "step_size", "step_size")
        check("step decay", sched["gamma"], "gamma", "gamma")
    check("loss", opt["loss"], "loss", "loss")
    if opt["loss"] == want["loss"]:
        hyper = opt.get("loss_hyperparameters", {})
        for name, value in want["loss_hyperparameters"].items():
            if not _same(hyper.get(name), value):
                out.append({"setting": f"loss {name}", "ours": hyper.get(name), "paper": value,
                            "config": "loss_kwargs", "text": f"loss {name} {hyper.get(name)!r} (paper: {value!r})"})
    check("captions per clip and epoch", opt["captions_per_clip"], "captions_per_clip", "captions_per_clip",
          f"captions per clip and epoch {opt['captions_per_clip']} (paper: every caption)")
    check("max tokens", text["max_tokens"], "max_tokens", "model.text_max_tokens")
    check("text preprocessing", text["mode"], "text_mode", "model.text_mode")
    check("audio encoder", audio["backbone"], "audio_encoder", "model.audio_backbone")
    arch, published = text["architecture"], BERT_CONFIGS.get(want["text_encoder"])
    if published is not None and "hidden_size" in arch:
        ours = (arch["hidden_size"], arch["layers"], arch["heads"])
        theirs = (published["hidden_size"], published["num_hidden_layers"], published["num_attention_heads"])
        if ours != theirs:
            out.append({"setting": "text encoder", "ours": text["encoder"], "paper": want["text_encoder"],
                        "config": "model.text_encoder", "text": f"text encoder {text['encoder']} (hidden, layers, "
                        f"heads {ours}; paper: {want['text_encoder']} {theirs})"})
    else:
        check("text encoder", text["encoder"], "text_encoder", "model.text_encoder")
    if audio["standin"]:
        out.append({"setting": "audio weights", "ours": "random-weight stand-in", "paper": "pretrained",
                    "config": "model.audio_checkpoint", "text": "audio encoder weights: random-weight stand-in "
                    f"{audio['checkpoint']} (paper: pretrained)"})
    if arch.get("standin"):
        out.append({"setting": "text weights", "ours": "random-weight stand-in", "paper": "pretrained",
                    "config": "model.text_encoder", "text": "text encoder weights: random-weight stand-in "
                    f"{text['encoder']} (paper: pretrained)"})
    check("audio encoder trained", params["audio_backbone"]["trainable"] > 0, "encoders_trained",
          "model.audio_trainable")
    check("text encoder trained", params["text_encoder"]["trainable"] > 0, "encoders_trained",
          "model.text_trainable")
    check("SpecAugment", audio["spec_augment"]["config"], "spec_augment", "spec_augment")
    check("benchmark", data["benchmark"], "dataset", "eval_dataset")
    check("fusion", report["model"].get("fusion"), "fusion", "model.fusion")
    check("metadata", {k for k in data["metadata_kind"].values() if k}, "metadata", "metadata_by_dataset")
    if report["model"].get("metadata"):
        check("shared text encoder", text["shared_for_metadata"], "shared_text_encoder", "model.share_text_encoder")
    check("gradient clipping", opt["grad_clip"], "grad_clip", "grad_clip")
    if params["text_encoder"]["trainable"] > 0:
        check("text dropout", arch.get("hidden_dropout"), "text_dropout", "model.text_dropout")
    check("retrieval width", report["model"].get("retrieval_dim"), "retrieval_dim", "model.retrieval_dim")
    check("selection metric", report["selection"]["metric"], "select_metric", "select_metric")
    check("selection tie rule", report["selection"]["on_tie"], "select_on_tie", "select_on_tie")
    return out


def _config_value(cfg: TrainConfig, key: str):
    if key.startswith("model."):
        return cfg.model.get(key.removeprefix("model."))
    return getattr(cfg, key, None)


def _is_deliberate(difference: dict, cfg: TrainConfig, deliberate: dict | None) -> bool:
    """A difference is deliberate when ``deliberate`` (flat ``{config field: value}``, dotted for the model
    section) sets the field behind it to the value the run's ``cfg`` has."""
    key = difference["config"]
    return bool(deliberate) and key in deliberate and _same(_config_value(cfg, key), deliberate[key])


def deliberate_deviations(cfg: TrainConfig, report: dict, deliberate: dict | None) -> list[str]:
    """The :func:`paper_differences` that ``deliberate`` explains (see :func:`ingredient_problems`): for the
    rehearsal, its known deviations from the paper (epochs, stand-in weights, miniature data, ...)."""
    return [d["text"] for d in paper_differences(cfg, report) if _is_deliberate(d, cfg, deliberate)]
