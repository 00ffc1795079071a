"""The training loop for one seed: epochs over caption-level batches, validation, checkpoints, exact resume.

:func:`train` writes a run folder (layout: :mod:`hybridlib.runs`). Every epoch it trains on the training
split, scores the validation split with ``cfg.select_metric``, saves the model when the score improved
(``best/``), appends a log row and writes an atomic checkpoint. After the last epoch the best model is
evaluated on the evaluation split. The last epoch's checkpoint holds no weights or optimiser state (nothing
trains after it; a resume only evaluates ``best/``): a bert-large row does not write 4 GB to delete it. Training is deterministic given the seed (PyTorch's deterministic
algorithms are switched on), so a resumed run equals an uninterrupted one exactly on the CPU.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is set up, ``cfg.batch_size`` stays the *global*
batch (each process embeds its slice of the batches one process would draw) and embeddings are gathered across
processes for the loss over the global batch (:mod:`hybridlib.training.distributed`); rank 0 prepares the data
first (:func:`hybridlib.training.data.training_data`), and only rank 0 prints and writes files.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from hybridlib import runs
from hybridlib.config import TrainConfig
from hybridlib.features.loader import TrainingLoader
from hybridlib.features.prepare import TrainingData
from hybridlib.training.data import training_data
from hybridlib.util.devices import resolve_device, to_device
from hybridlib.util.errors import HybridlibError, UserError
from hybridlib.util.seeding import deterministic, rng_state, seed_everything, set_rng_state


class TrainingDiverged(HybridlibError):
    """The validation score (or the training loss) became NaN or infinite: the run cannot go on."""


@dataclass
class TrainResult:
    out_dir: Path
    best_epoch: int
    best_score: float
    history: list[dict]
    test_metrics: dict | None
    seconds: float
    finished: bool
    model: torch.nn.Module | None = None


def build_model(cfg: TrainConfig) -> torch.nn.Module:
    """A :class:`hybridlib.models.retrieval.RetrievalModel` from ``cfg.model``."""
    from hybridlib.models.retrieval import RetrievalModel

    return RetrievalModel(cfg.model_config())


def select_score(metrics: dict, select_metric: str) -> float:
    """The validation score that picks the best epoch (``mAP@10``: text-to-audio mAP@10; ``R-sum``: the six
    recalls; ``t2a_R-sum``: the three text-to-audio recalls, Mei et al.'s trainer)."""
    return float(metrics["t2a_mAP@10"] if select_metric == "mAP@10" else metrics[select_metric])


def improves(score: float, best: float, on_tie: str = "earlier") -> bool:
    """Whether ``score`` replaces the best epoch so far (``on_tie="later"``: a tie does, as in Mei et al.'s
    ``r_sum >= max(recall_sum)``)."""
    return score > best or (on_tie == "later" and score == best)


def check_batches(cfg: TrainConfig, data: TrainingData, world_size: int = 1) -> None:
    """Raise a one-line :class:`UserError` when a global batch cannot be trained on: fewer than 2 captions (no
    in-batch negative), or, with ``world_size`` processes, a process whose slice would hold fewer than 2."""
    captions = data.train.n_epoch_captions(cfg.captions_per_clip)
    smallest = min(cfg.batch_size, captions)  # every global batch is batch_size, or the whole (short) epoch
    if smallest < 2:
        raise UserError(f"training split {data.train.name!r} has {captions} captions per epoch: too few for "
                        "in-batch negatives (need at least 2)")
    if smallest < 2 * world_size:
        raise UserError(f"a global batch of {smallest} captions (batch_size {cfg.batch_size}, {captions} captions "
                        f"per epoch) leaves a process fewer than 2 of them with {world_size} processes: use at most "
                        f"{smallest // 2} processes or a larger batch")


def train(cfg: TrainConfig, out_dir: str | Path, data: TrainingData | None = None, model: torch.nn.Module | None = None,
          resume: bool = False, progress: bool = True, evaluate_test: bool = True, keep_data: bool = False
          ) -> TrainResult:
    """Train one seed (``cfg.seed``) into ``out_dir``; see the module docstring.

    ``data``/``model`` may be given (notebooks reuse encoded splits; tests pass tiny models); otherwise they
    are built from ``cfg`` (data through :func:`hybridlib.training.data.training_data`, which ``keep_data`` asks
    to keep them for the next training in this process). Given data must have been prepared for ``cfg``
    (:class:`~hybridlib.training.data.DataMismatch` otherwise). With
    ``resume`` the run continues from ``out_dir``'s checkpoint, which must come from the same config (apart
    from runtime fields such as ``stop_after_epoch``); without a checkpoint the run starts from scratch and the files
    an earlier run left in ``out_dir`` are removed first (:func:`hybridlib.runs.clear_run_files`: notebooks rerun
    into their folders by design; the command line refuses a used folder unless told to overwrite it). ``out_dir``
    is locked while training (:func:`hybridlib.util.locks.folder_lock`): a second writer is refused. A file system
    without room for two checkpoints and the best model is named before the first epoch. ``cfg.num_threads``
    applies for the call only.
    """
    from contextlib import ExitStack

    from hybridlib.training import distributed as dist_utils
    from hybridlib.util.locks import folder_lock

    previous = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    try:
        with ExitStack() as lock:
            dist_utils.init_from_env(cfg.device)  # under torchrun rank 0 locks; a refusal reaches every rank
            dist_utils.from_rank0(lambda: lock.enter_context(folder_lock(out_dir)) and None)
            return _train_one_seed(cfg, Path(out_dir), data, model, resume, progress, evaluate_test, keep_data)
    finally:
        torch.set_num_threads(previous)


def _train_one_seed(cfg, out_dir: Path, data, model, resume: bool, progress: bool,
                    evaluate_test: bool, keep_data: bool) -> TrainResult:
    from hybridlib.evaluation import evaluate_split
    from hybridlib.losses import get_loss
    from hybridlib.training import distributed as dist_utils
    from hybridlib.training.augment import frame_augmenter
    from hybridlib.training.optim import build_optimizer, build_scheduler, optimizer_step
    from hybridlib.util.progress import progress_bar as tqdm

    start_time = time.perf_counter()
    ctx = dist_utils.init_from_env(cfg.device)
    device = ctx.device if ctx.world_size > 1 else resolve_device(cfg.device)
    is_main = ctx.rank == 0
    deterministic(True)

    state = runs.load_checkpoint(out_dir) if resume else None
    if state is not None:
        runs.check_resume_config(state, cfg, out_dir)
    elif resume and is_main:
        print(f"[train] no checkpoint in {out_dir}; starting from scratch")
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if state is None:
            runs.clear_run_files(out_dir)  # from scratch: nothing of an earlier run stays beside this one
        runs.save_config(cfg, out_dir)

    seed_everything(cfg.seed)
    data = training_data(cfg, data, progress=progress and is_main, keep=keep_data)
    if is_main:
        runs.write_data_report(out_dir, data.info)
    if model is None:
        seed_everything(cfg.seed)  # model init independent of what data preparation consumed
        model = build_model(cfg)
    from hybridlib.models.audio.frontends import set_spec_augment

    set_spec_augment(model, cfg.spec_augment)  # the trainable backbones' own SpecAugment follows the config

    def check_space() -> None:  # before the first epoch, not at its checkpoint (torchrun: rank 0, all stop)
        try:
            runs.check_training_space(out_dir, model)
        except UserError:
            runs.clear_run_files(out_dir)  # nothing trained: a plain rerun with space is not a "used" folder
            raise

    if state is None:
        dist_utils.from_rank0(check_space)
    model.to(device)
    loss_fn = get_loss(cfg.loss, **cfg.loss_kwargs)
    steps_per_epoch = data.train.n_training_batches(cfg.batch_size, captions_per_clip=cfg.captions_per_clip)
    check_batches(cfg, data, ctx.world_size)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    from hybridlib.training.ingredients import amp_precision

    prec = amp_precision(cfg, device)  # one rule for the loop and its ingredient report
    use_amp = prec.dtype is not None
    scaler = prec.grad_scaler(device)  # float16 only: bfloat16 has float32's range
    step_fn = dist_utils.ContrastiveStep(model, gather=ctx.world_size > 1)
    runner = dist_utils.wrap_ddp(step_fn, ctx)
    if cfg.compile:  # the step only: `model` (evaluation, checkpoints) stays the plain module
        runner = torch.compile(runner)
    augment = frame_augmenter(cfg)
    loader = TrainingLoader(data.train, cfg.batch_size, cfg.seed, rank=ctx.rank, world_size=ctx.world_size,
                            captions_per_clip=cfg.captions_per_clip, num_workers=cfg.num_workers,
                            pin_memory=device.type == "cuda")
    if is_main:
        from hybridlib.training.ingredients import ingredient_report

        runs.write_ingredients(out_dir, ingredient_report(cfg, model, data, steps_per_epoch, ctx.world_size,
                                                          loader=loader))

    history: list[dict] = []
    start_epoch, best_score, best_epoch = 1, -math.inf, 0
    if state is not None and "model" not in state:  # the final checkpoint: training is complete
        history, start_epoch = state["history"], state["epoch"] + 1
        best_score, best_epoch = state["best_score"], state["best_epoch"]
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        history = state["history"]
        start_epoch, best_score, best_epoch = state["epoch"] + 1, state["best_score"], state["best_epoch"]
        state = None  # the (memory-mapped) checkpoint is copied into model and optimiser: release it

    writer = None
    if cfg.tensorboard and is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"), purge_step=start_epoch)

    last_epoch = cfg.epochs if cfg.stop_after_epoch is None else min(cfg.epochs, cfg.stop_after_epoch)
    try:
        for epoch in range(start_epoch, last_epoch + 1):
            t0 = time.perf_counter()
            model.train()
            # the losses are summed on the device and read once per epoch: no host synchronisation per step
            total, count = torch.zeros((), dtype=torch.float64, device=device), 0
            batches = loader.epoch(epoch)
            bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                       disable=not (progress and is_main))
            for batch in bar:
                if augment is not None:
                    batch = augment(batch)
                batch = to_device(batch, device)
                with prec.autocast(device):
                    sim, clip_index = runner(batch)
                    loss = loss_fn(sim.float(), same_item=clip_index[:, None] == clip_index[None, :])
                optimizer_step(loss, model, optimizer, scaler, cfg.grad_clip)
                scheduler.step()
                total += loss.detach().double()
                count += 1
                if not bar.disable and (count % 10 == 0 or count == steps_per_epoch):  # a shown bar reads it
                    bar.set_postfix(loss=f"{float(total) / count:.4f}")
            train_seconds = time.perf_counter() - t0
            train_loss = float(total) / max(count, 1)
            score = math.nan
            if math.isfinite(train_loss):
                try:
                    val = evaluate_split(model, data.val, batch_size=cfg.eval_batch_size, device=device,
                                         autocast_dtype=prec.dtype)
                    score = select_score(val, cfg.select_metric)
                except ValueError as exc:  # NaN similarities: the weights are no longer finite
                    if "NaN" not in str(exc):
                        raise
            if not (math.isfinite(score) and math.isfinite(train_loss)):
                raise TrainingDiverged(
                    f"training diverged: {cfg.name} seed {cfg.seed} epoch {epoch}: training loss {train_loss}, "
                    f"validation {cfg.select_metric} {score}; lower the learning rate (lr={cfg.lr}) or check the data")
            improved = improves(score, best_score, cfg.select_on_tie)
            if improved:
                best_score, best_epoch = score, epoch
                if is_main:
                    runs.save_model(model, out_dir / runs.BEST, cfg, extra={"epoch": epoch, cfg.select_metric: score})
            row = {"epoch": epoch, "train_loss": train_loss, "lr": optimizer.param_groups[0]["lr"],
                   "train_seconds": round(train_seconds, 3), "seconds": round(time.perf_counter() - t0, 3),
                   **{f"val_{k}": v for k, v in val.items()}, "best": improved}
            history.append(row)
            if is_main:
                runs.write_log(out_dir, history)
                if writer is not None:
                    writer.add_scalar("train/loss", row["train_loss"], epoch)
                    writer.add_scalar("train/lr", row["lr"], epoch)
                    for k, v in val.items():
                        writer.add_scalar(f"val/{k}", v, epoch)
                    writer.flush()
                progress_state = {"epoch": epoch, "rng": rng_state(), "history": history, "best_score": best_score,
                                  "best_epoch": best_epoch, "config": cfg.to_dict()}
                if epoch < cfg.epochs:
                    runs.save_checkpoint(out_dir, {
                        **progress_state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if use_amp else None})
                else:  # training is complete: a resume only evaluates best/ (module docstring, "checkpoints")
                    runs.save_final_checkpoint(out_dir, progress_state)
            if progress and is_main:
                print(f"[train] {cfg.name} seed {cfg.seed} epoch {epoch}/{cfg.epochs} loss {row['train_loss']:.4f} "
                      f"val {cfg.select_metric} {score:.2f}{' *' if improved else ''}", flush=True)
    finally:
        if writer is not None:
            writer.close()
    dist_utils.barrier(ctx)

    finished = (history[-1]["epoch"] if history else 0) >= cfg.epochs
    test_metrics = None
    if finished and evaluate_test:
        runs.load_model_weights(model, out_dir / runs.BEST)  # after the barrier: rank 0 has written it
        model.to(device)
        test_metrics = evaluate_split(model, data.test, batch_size=cfg.eval_batch_size, device=device,
                                      autocast_dtype=prec.dtype)
        if is_main:
            runs.write_seed_metrics(out_dir, cfg, test_metrics, data.test.name, best_epoch, best_score,
                                    time.perf_counter() - start_time)
    return TrainResult(out_dir, best_epoch, best_score, history, test_metrics, time.perf_counter() - start_time,
                       finished, model)
