"""Optimiser and learning-rate schedules (hybrid paper IV-C; Mei et al. 3.2)."""

from __future__ import annotations

import torch

from hybridlib.config import TrainConfig


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the trainable parameters, PyTorch's default betas/eps (hybrid paper IV-C, Mei 3.2).

    With ``cfg.text_lr`` the trainable text-encoder parameters (``model.text_encoder_parameters()``) form a
    second parameter group at that peak rate (pretrained layers usually need a smaller one than heads trained
    from scratch); the schedule scales both groups alike.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    text = model.text_encoder_parameters() if cfg.text_lr is not None and hasattr(model, "text_encoder_parameters") \
        else []
    # foreach: one multi-tensor update for all parameters (PyTorch picks it on GPUs only; on the CPU it is
    # ~7% of a teaching-config training faster, same update rule)
    if not text:
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    ids = {id(p) for p in text}
    groups = [{"params": [p for p in params if id(p) not in ids]}, {"params": text, "lr": cfg.text_lr}]
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


def build_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Per-step LR schedule.

    * ``warmup-cosine``: linear warm-up over ``warmup_epochs`` epochs up to ``lr``, then cosine decay to
      ``lr_min`` at the last step (hybrid paper: one warm-up epoch, 2e-5 -> 1e-7).
    * ``step``: ``lr * gamma ** (epoch // step_size)`` (Mei et al.: /10 every 20 epochs).
    * ``constant``.
    """
    from torch.optim import lr_scheduler as S

    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "warmup-cosine":
        warm = min(total - 1, int(round(cfg.warmup_epochs * steps_per_epoch)))
        cosine = S.CosineAnnealingLR(optimizer, T_max=max(1, total - warm - 1), eta_min=cfg.lr_min)
        if warm <= 0:
            return cosine
        # ramp from lr/warm to lr over the warm-up steps
        linear = S.LinearLR(optimizer, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm - 1)
        return S.SequentialLR(optimizer, [linear, cosine], milestones=[warm])
    if cfg.schedule == "step":
        return S.StepLR(optimizer, step_size=cfg.step_size * steps_per_epoch, gamma=cfg.gamma)
    return S.ConstantLR(optimizer, factor=1.0, total_iters=0)


def optimizer_step(loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler,
                   grad_clip: float | None) -> None:
    """One step through AMP's gradient ``scaler`` (a disabled one on CPU): zero the gradients, backward, clip the
    gradient norm at ``grad_clip`` on unscaled gradients (Mei et al.: 2; None: no clipping), step, update."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
