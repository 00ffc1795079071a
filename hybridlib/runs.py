"""The run folder: what training writes and evaluation reads, in one place (neither imports the other).

One seed's folder (``train`` writes it; ``<out>/seed-<n>/`` when several seeds run)::

    config.yaml                 the TrainConfig in effect
    ingredients.json            what was actually in effect (hybridlib.training.ingredients): metadata coverage,
                                FS counts, SpecAugment, trainable parameters, text preprocessing, schedule, ...
    checkpoint.pt               last epoch (model, optimiser, scheduler, RNG, history); atomic. After the
                                final epoch only the history (training is complete; best/ has the model)
    checkpoint.prev.pt          the epoch before (kept so a damaged checkpoint costs one epoch, not the run;
                                deleted when the final checkpoint is written)
    data_report.json            the data trained on: clips per split, load reports, clips excluded and why
    log.csv, tb/                one row per epoch; TensorBoard
    best/model.safetensors      best epoch on validation (+ model_config.json, train_config.json)
    metrics-<split>.json        metrics of the best model on <split> (training writes the evaluation split;
                                ``hybridlib evaluate --split`` adds others, each in its own file)

While a process writes a run folder it holds ``.lock`` in it (:func:`hybridlib.util.locks.folder_lock`): a second
writer is refused in one line. ``train`` from scratch into a seed folder that already holds a run (finished or
not) is refused unless it resumes or overwrites (:func:`check_new_run`); training from scratch first removes
the files of this layout that an earlier run left (:func:`clear_run_files`), so a folder never mixes two runs.

A multi-seed folder holds the ``seed-<n>/`` folders and ``metrics-<split>.json`` with each seed's metrics
and their mean / sample standard deviation (``ddof=1``; the papers do not say which, the sample estimate is
the usual one for three runs; one seed gives std 0).

Checkpoints hold only tensors and plain Python values and are read with ``torch.load(weights_only=True)``:
nothing in a checkpoint can execute code. A file that needs anything else is refused with an error naming it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import torch

from hybridlib.config import ConfigError, TrainConfig, config_to_yaml, read_config_dict
from hybridlib.util.errors import UserError, one_line
from hybridlib.util.files import atomic_path, atomic_write_json, atomic_write_text, check_free_space

CONFIG = "config.yaml"
INGREDIENTS = "ingredients.json"
CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
LOG = "log.csv"
DATA_REPORT = "data_report.json"
BEST = "best"
# TrainConfig fields that do not change the trained model: a resumed run or an aggregate may differ in them
# (eval_split only chooses the split the best model is finally scored on)
RUNTIME_FIELDS = frozenset({"name", "description", "notes", "paper_row", "seeds", "device", "num_threads",
                            "tensorboard", "stop_after_epoch", "cache_dir", "eval_split", "num_workers",
                            "waveform_cache"})


class CheckpointDamaged(UserError):
    """A checkpoint file cannot be read (truncated, garbled, or holding objects that are not plain data)."""


class ConfigChanged(UserError):
    """``--resume`` with a config that differs from the checkpoint's in fields that change the numbers."""


# ---------------------------------------------------------------------------------------------------- config
def save_config(cfg: TrainConfig, run_dir: str | Path) -> Path:
    return atomic_write_text(Path(run_dir) / CONFIG, config_to_yaml(cfg))


def write_ingredients(run_dir: str | Path, report: dict) -> Path:
    return atomic_write_json(Path(run_dir) / INGREDIENTS, report)


def read_ingredients(run_dir: str | Path) -> dict:
    path = Path(run_dir) / INGREDIENTS
    if not path.is_file():
        raise FileNotFoundError(f"no {INGREDIENTS} in {run_dir} (written when training starts)")
    return json.loads(path.read_text())


def read_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / CONFIG
    return TrainConfig.from_dict(read_config_dict(path), source=str(path))


def config_differences(old: dict, new: dict, ignore=RUNTIME_FIELDS, prefix: str = "") -> list[str]:
    """Dotted names of the fields whose values differ between two config dicts (``ignore``: top-level names)."""
    changed = []
    for key in sorted(set(old) | set(new)):
        if not prefix and key in ignore:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += config_differences(a, b, ignore=(), prefix=f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed


def same_experiment(a: TrainConfig, b: TrainConfig) -> bool:
    """True when two configs differ at most in the seed and in runtime fields (same numbers per seed)."""
    return not config_differences(a.to_dict(), b.replace(seed=a.seed).to_dict())


# ---------------------------------------------------------------------------------------------------- run state
def run_state(run_dir: str | Path) -> str | None:
    """What a seed folder holds: ``"finished"`` (metrics of the best model), ``"interrupted"`` (a checkpoint, no
    metrics), ``"started"`` (files of a run that wrote no checkpoint yet), or None (no run files)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    if any(run_dir.glob("metrics-*.json")) and (run_dir / BEST).is_dir():
        return "finished"
    if (run_dir / CHECKPOINT).is_file() or (run_dir / PREVIOUS_CHECKPOINT).is_file():
        return "interrupted"
    if any((run_dir / name).exists() for name in (CONFIG, INGREDIENTS, LOG, DATA_REPORT, BEST)):
        return "started"
    return None


def clear_run_files(run_dir: str | Path) -> None:
    """Remove the files of the run-folder layout (module docstring) from a seed folder, and only those: a
    training from scratch starts from an empty folder, never a mix with an earlier run's ``best/`` or metrics."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    files = [run_dir / n for n in (CONFIG, INGREDIENTS, CHECKPOINT, PREVIOUS_CHECKPOINT, LOG, DATA_REPORT)]
    files += [*run_dir.glob("data_report-*.json"), *run_dir.glob("metrics-*.json")]
    files += [run_dir / BEST / n for n in ("model.safetensors", "model_config.json", "train_config.json")]
    files += list((run_dir / "tb").glob("events.out.tfevents.*"))
    for f in files:
        f.unlink(missing_ok=True)
    for folder in (run_dir / BEST, run_dir / "tb"):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def check_new_run(out: str | Path, cfg: TrainConfig, seeds, resume: bool = False, overwrite: bool = False) -> None:
    """The command line's guard before training ``seeds`` of ``cfg`` into the run folder ``out``.

    Refused (:class:`UserError`, one line) unless ``resume`` or ``overwrite``: a seed folder to train that already
    holds a run, finished or not (training from scratch would replace its ``best/``, config and metrics). Refused
    unless ``overwrite``: a seed folder of another config (this run's ``metrics-<split>.json`` would replace its
    aggregate). With ``overwrite`` those seed folders' run files are removed (:func:`clear_run_files`), and so are
    ``out``'s aggregate metrics; seeds of the same config that are not retrained stay and are aggregated.
    """
    out = Path(out)
    seeds = [int(s) for s in seeds]
    other = []
    for d in seed_dirs(out):
        seed, state = int(d.name[5:]), run_state(d)
        if state is None:
            continue
        if seed in seeds:
            if overwrite:
                clear_run_files(d)
            elif not resume:
                epoch = ""
                if state == "interrupted":
                    try:
                        epoch = f" after epoch {load_checkpoint(d)['epoch']}"
                    except CheckpointDamaged:
                        epoch = " (damaged checkpoint)"
                article = "an" if state == "interrupted" else "a"
                raise UserError(f"{d} already holds {article} {state} run{epoch}: add --resume to continue it, --overwrite "
                                "to replace it, or choose another --out")
            continue
        try:
            differs = config_differences(cfg.replace(seed=seed).to_dict(), read_config(d).to_dict())
        except (ConfigError, FileNotFoundError):
            differs = ["config.yaml unreadable"]
        if differs:
            other.append((d, differs))
    for d, differs in other:
        if not overwrite:
            raise UserError(f"{d} holds a run of another config ({', '.join(differs[:4])}): train into another "
                            "--out, or add --overwrite to remove it")
        clear_run_files(d)
        if not any(d.iterdir()):
            d.rmdir()
    if overwrite:
        for f in out.glob("metrics-*.json"):
            f.unlink()


def checkpoint_bytes(model: torch.nn.Module) -> int:
    """An estimate of one ``checkpoint.pt`` of ``model``: weights plus two Adam moments of its trainable ones."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return weights + 2 * trainable


def check_training_space(run_dir: str | Path, model: torch.nn.Module) -> None:
    """Refuse a training before its first epoch when ``run_dir``'s file system cannot hold what it writes: two
    checkpoints (``checkpoint.pt`` and the one before), the best model and a margin for the small files."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    check_free_space(run_dir, 2 * checkpoint_bytes(model) + weights + 1_000_000,
                     "training (two checkpoints and the best model)")


def tensors_bytes(value) -> int:
    """Bytes of every tensor in a nested dict / list (what ``torch.save`` will write, headers aside)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensors_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensors_bytes(v) for v in value)
    return 0


# ---------------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(run_dir: str | Path, state: dict) -> Path:
    """Write ``checkpoint.pt`` atomically; the one it replaces becomes ``checkpoint.prev.pt``.

    Written without the zip records' CRC-32: checkpoints are read memory-mapped (:func:`read_checkpoint_file`),
    a path that never verifies it, while computing it costs about 3 s per GB on every epoch (a bert-large row's
    checkpoint holds ~5 GB of weights and Adam moments). A truncated file is still detected (the zip directory
    sits at its end) and the atomic rename keeps torn writes out.
    """
    from torch.utils import serialization

    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    config = serialization.config.save
    with atomic_path(path, size=tensors_bytes(state)) as tmp:
        previous, config.compute_crc32 = config.compute_crc32, False
        try:  # through a Python file: a full disk surfaces as OSError (ENOSPC), not as torch's "unexpected pos"
            with open(tmp, "wb") as f:
                torch.save(state, f)
        finally:
            config.compute_crc32 = previous
        if path.is_file():
            os.replace(path, run_dir / PREVIOUS_CHECKPOINT)
    return path


def save_final_checkpoint(run_dir: str | Path, state: dict) -> Path:
    """The checkpoint of a complete training (``state``: epoch, history, best score and epoch, RNG, config; no
    weights or optimiser state, which no later epoch needs): a resume goes straight to evaluating ``best/``.
    The previous checkpoint (weights and optimiser moments of the epoch before) is deleted: nothing resumes
    from it any more."""
    path = save_checkpoint(run_dir, state)
    (Path(run_dir) / PREVIOUS_CHECKPOINT).unlink(missing_ok=True)
    return path


def read_checkpoint_file(path: str | Path) -> dict:
    """A checkpoint's contents, read with ``weights_only=True``; :class:`CheckpointDamaged` names the file."""
    path = Path(path)
    try:  # memory-mapped: a resumed run does not hold a second copy of model and optimiser state in memory
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # truncated zip, garbled bytes, or a pickle asking for a non-allow-listed global
        raise CheckpointDamaged(f"{path} is damaged or not a plain-data checkpoint and was not loaded "
                                f"({one_line(exc)})") from None
    if not isinstance(state, dict) or "epoch" not in state:
        raise CheckpointDamaged(f"{path} is not a hybridlib training checkpoint (no epoch)")
    return state


def load_checkpoint(run_dir: str | Path) -> dict | None:
    """The run's last checkpoint (None when it has none).

    A damaged ``checkpoint.pt`` raises :class:`CheckpointDamaged`, pointing at ``checkpoint.prev.pt`` (the
    epoch before) when that one reads correctly.
    """
    run_dir = Path(run_dir)
    path, previous = run_dir / CHECKPOINT, run_dir / PREVIOUS_CHECKPOINT
    if not path.is_file():
        return read_checkpoint_file(previous) if previous.is_file() else None  # crash between the renames
    try:
        return read_checkpoint_file(path)
    except CheckpointDamaged as exc:
        hint = ""
        if previous.is_file():
            try:
                epoch = read_checkpoint_file(previous)["epoch"]
                hint = (f"; the previous checkpoint {previous} (epoch {epoch}) is intact: move it to {path} "
                        "to resume from there")
            except CheckpointDamaged:
                hint = f"; the previous checkpoint {previous} is damaged too"
        raise CheckpointDamaged(f"{exc}{hint}") from None


def check_resume_config(state: dict, cfg: TrainConfig, run_dir: str | Path) -> None:
    """Stop (:class:`ConfigChanged`) when ``cfg`` differs from the checkpoint's config in a field that matters."""
    changed = config_differences(state.get("config") or {}, cfg.to_dict())
    if changed:
        old, new = state.get("config") or {}, cfg.to_dict()

        def value(d, dotted):
            for part in dotted.split("."):
                d = d.get(part) if isinstance(d, dict) else None
            return d

        detail = ", ".join(f"{k}: {value(old, k)!r} -> {value(new, k)!r}" for k in changed)
        raise ConfigChanged(f"cannot resume {run_dir}: the config differs from the checkpoint's ({detail}); "
                            "resume with the original config or train into a new folder")


# ---------------------------------------------------------------------------------------------------- models
def save_model(model: torch.nn.Module, folder: str | Path, cfg: TrainConfig | None = None,
               extra: dict | None = None) -> Path:
    """Safetensors weights + ``model_config.json`` (+ ``train_config.json``), each written atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / "model.safetensors", size=tensors_bytes(state)) as tmp:
        save_file(state, str(tmp), metadata={k: str(v) for k, v in (extra or {}).items()})
    model_cfg = getattr(model, "cfg", None)
    if model_cfg is not None and hasattr(model_cfg, "__dataclass_fields__"):
        atomic_write_json(folder / "model_config.json", asdict(model_cfg))
    if cfg is not None:
        atomic_write_json(folder / "train_config.json", cfg.to_dict())
    return folder / "model.safetensors"


def load_model_weights(model: torch.nn.Module, folder: str | Path) -> torch.nn.Module:
    """Load ``folder/model.safetensors`` into ``model``; a damaged file raises :class:`CheckpointDamaged`
    naming it (safetensors never executes code, but a truncated file must not end in a raw traceback)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointDamaged(f"{path} is damaged and was not loaded ({type(exc).__name__}: "
                                f"{one_line(exc)}); train again or restore the file") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointDamaged(f"{path} does not fit the model of {Path(folder) / 'model_config.json'} "
                                f"({one_line(exc)})") from None
    return model


def _read_json_file(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise CheckpointDamaged(f"{path} is damaged and was not read ({one_line(exc)})"
                                ) from None
    if not isinstance(value, dict):
        raise CheckpointDamaged(f"{path} is damaged: expected a JSON object, found {type(value).__name__}")
    return value


def load_trained(seed_dir: str | Path, device="cpu"):
    """``(model, TrainConfig)`` from a seed folder's ``best/`` (safetensors + JSON configs), in eval mode."""
    from hybridlib.models.config import ModelConfig
    from hybridlib.models.retrieval import RetrievalModel

    best = Path(seed_dir) / BEST
    for name in ("model.safetensors", "model_config.json", "train_config.json"):
        if not (best / name).is_file():
            raise UserError(f"{best / name} missing: not a finished training run")
    cfg = TrainConfig.from_dict(_read_json_file(best / "train_config.json"), source=str(best / "train_config.json"))
    try:
        model_cfg = ModelConfig.from_dict(_read_json_file(best / "model_config.json"))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        raise CheckpointDamaged(f"{best / 'model_config.json'} is damaged: {one_line(exc)}") from None
    model = RetrievalModel(model_cfg)
    load_model_weights(model, best)
    return model.to(device).eval(), cfg


# ---------------------------------------------------------------------------------------------------- data
def write_data_report(run_dir: str | Path, info: dict, split: str | None = None) -> Path:
    """Save the prepared data's ``info`` (load reports, excluded clips with their reasons) in the run folder:
    ``data_report.json``, or ``data_report-<split>.json`` for the data of one evaluation."""
    name = DATA_REPORT if split is None else f"data_report-{split}.json"
    return atomic_write_json(Path(run_dir) / name, json.loads(json.dumps(info, default=str)))


# ---------------------------------------------------------------------------------------------------- logs
def write_log(run_dir: str | Path, history: list[dict]) -> Path:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    return atomic_write_text(Path(run_dir) / LOG, buffer.getvalue())


def read_log(run_dir: str | Path):
    """``log.csv`` of a run as a DataFrame."""
    import pandas as pd

    return pd.read_csv(Path(run_dir) / LOG)


# ---------------------------------------------------------------------------------------------------- metrics
def metrics_path(run_dir: str | Path, split: str) -> Path:
    return Path(run_dir) / f"metrics-{split}.json"


def seed_dir(run_dir: str | Path, seed: int) -> Path:
    return Path(run_dir) / f"seed-{seed}"


def seed_dirs(run_dir: str | Path) -> list[Path]:
    """``seed-<n>`` folders of a run, by seed."""
    dirs = [p for p in Path(run_dir).glob("seed-*") if p.is_dir() and p.name[5:].lstrip("-").isdigit()]
    return sorted(dirs, key=lambda p: int(p.name[5:]))


def trained_seed_dir(run_dir: str | Path, seed: int | None = None) -> Path:
    """The seed folder holding a trained model (``best/``) in ``run_dir``.

    ``run_dir`` is a seed folder itself, or a run folder of ``seed-<n>/`` folders: then ``seed`` picks one
    (default: the lowest seed that finished). :class:`UserError` names what is there when nothing fits.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist")
    if (run_dir / BEST).is_dir() and seed is None:
        return run_dir
    trained = [d for d in seed_dirs(run_dir) if (d / BEST).is_dir()]
    if seed is not None:
        chosen = [d for d in trained if d.name == f"seed-{seed}"]
        if not chosen:
            have = ", ".join(d.name for d in trained) or "none"
            raise UserError(f"{run_dir} has no trained seed {seed} (trained seeds: {have})")
        return chosen[0]
    if not trained:
        raise UserError(f"{run_dir} holds no trained model ({BEST}/ or seed-*/{BEST}/): train it first")
    return trained[0]


def write_seed_metrics(run_dir: str | Path, cfg: TrainConfig, metrics: dict, split: str,
                       best_epoch: int | None = None, best_score: float | None = None,
                       seconds: float | None = None) -> Path:
    payload = {"name": cfg.name, "paper_row": cfg.paper_row, "seed": cfg.seed, "split": split,
               "metrics": metrics, "best_epoch": best_epoch, "select_metric": cfg.select_metric,
               "best_val_score": best_score, "seconds": None if seconds is None else round(seconds, 2)}
    return atomic_write_json(metrics_path(run_dir, split), payload)


def read_metrics(run_dir: str | Path, split: str) -> dict:
    path = metrics_path(run_dir, split)
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} in {run_dir}")
    return _read_json_file(path)


def aggregate(per_seed: list[dict]) -> dict[str, dict]:
    """``{metric: {"mean", "std", "n", "values"}}`` over seeds (sample std, 0 for a single seed)."""
    if not per_seed:
        raise ValueError("no results to aggregate")
    keys = [k for k in per_seed[0] if all(k in r for r in per_seed)]
    out = {}
    for k in keys:
        vals = [float(r[k]) for r in per_seed]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        out[k] = {"mean": mean, "std": std, "n": len(vals), "values": vals}
    return out


def paired_gap(a: dict, b: dict, metric: str = "t2a_mAP@10") -> dict:
    """Per-seed differences ``a - b`` of two multi-seed summaries (:func:`write_run_metrics`) over the seeds both
    ran: ``{"mean", "std", "per_seed", "seeds"}`` (sample std; 0 for one seed). Both models trained with the same
    seeds, so the pairing removes what a seed does to both (data order, initialisation)."""
    seeds = [s for s in a["seeds"] if s in b["seeds"]]
    if not seeds:
        raise ValueError("the two runs share no seed")
    diffs = [a["seeds"][s][metric] - b["seeds"][s][metric] for s in seeds]
    agg = aggregate([{"gap": d} for d in diffs])["gap"]
    return {"mean": agg["mean"], "std": agg["std"], "per_seed": diffs, "seeds": [int(s) for s in seeds]}


def format_aggregate(agg: dict[str, dict], keys) -> str:
    """``"t2a_mAP@10 52.83±1.15, ..."`` for the ``keys`` present; a single seed shows no spread."""
    def one(k):
        v = agg[k]
        return f"{k} {v['mean']:.2f}±{v['std']:.2f}" if v.get("n", 1) > 1 else f"{k} {v['mean']:.2f}"

    return ", ".join(one(k) for k in keys if k in agg)


def write_run_metrics(run_dir: str | Path, split: str, cfg: TrainConfig | None = None,
                      seeds: list[int] | None = None) -> dict:
    """Aggregate ``seed-*/metrics-<split>.json`` into ``run_dir/metrics-<split>.json``.

    Only seeds of the same experiment are aggregated: with ``cfg``, seed folders whose ``config.yaml``
    differs from it in anything but the seed and runtime fields are left out (and listed under
    ``excluded``); with ``seeds``, only those seeds are considered.
    """
    run_dir = Path(run_dir)
    per_seed, info, excluded = {}, {}, {}
    for d in seed_dirs(run_dir):
        seed = int(d.name[5:])
        if seeds is not None and seed not in seeds:
            continue
        path = metrics_path(d, split)
        if not path.is_file():
            continue
        if cfg is not None:
            try:
                other = read_config(d)
            except (ConfigError, FileNotFoundError) as exc:
                excluded[str(seed)] = f"unreadable config: {exc}"
                continue
            if not same_experiment(cfg, other):
                changed = config_differences(cfg.replace(seed=other.seed).to_dict(), other.to_dict())
                excluded[str(seed)] = "another config (" + ", ".join(changed) + ")"
                continue
        try:
            payload = _read_json_file(path)
            per_seed[str(payload["seed"])] = payload["metrics"]
        except (CheckpointDamaged, KeyError) as exc:
            excluded[str(seed)] = f"unreadable metrics: {exc}"
            continue
        info = info or payload
    if not per_seed:
        raise FileNotFoundError(f"no seed-*/{metrics_path('.', split).name} of this config in {run_dir}")
    summary = {"name": info.get("name"), "paper_row": info.get("paper_row"), "split": split,
               "select_metric": info.get("select_metric"), "seeds_run": [int(s) for s in per_seed],
               "seeds": per_seed, "aggregate": aggregate(list(per_seed.values())), "excluded": excluded}
    atomic_write_json(metrics_path(run_dir, split), summary)
    return summary
