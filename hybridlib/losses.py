"""The four metric-learning objectives compared by Mei et al. (2022), written loop-free.

Every loss takes ``sim``, the ``[B, B]`` cosine-similarity matrix of a batch (eq. 1): row i is audio
``a_i``, column j is caption ``t_j``, and the diagonal holds the positive pairs ``s_ii``. An optional
boolean ``same_item`` ``[B, B]`` mask marks pairs that share an audio clip (two captions of one clip in the
same batch): those pairs are never used as negatives (the diagonal is always the positive).

All four are bidirectional: the audio-to-text term treats audio ``a_i`` as anchor and the captions of
row i as candidates; the text-to-audio term treats caption ``t_i`` as anchor and the audios of column i.
Following equations (2), (3), (6) and (7) of the paper, the two directions are *summed* and each is
averaged over the batch (``direction_reduction="sum"``); Mei et al.'s code and CLIP-style code average
the two directions for NT-Xent (``"mean"``, exactly half the value). With Adam the factor barely matters.

* :func:`nt_xent` - eq. (7), softmax cross-entropy of ``sim / tau`` (tau = 0.07).
* :func:`triplet_sum` - eq. (2), hinge ``[m + s_ij - s_ii]_+`` summed over all negatives (m = 0.2).
* :func:`triplet_max` - eq. (3), only the hardest negative per anchor (VSE++, Faghri et al.).
* :func:`triplet_weighted` - eq. (4)-(6), maximum polynomial loss of Wei et al. (CVPR 2020).

Pick one by name with :func:`get_loss` (``"nt-xent"``, ``"triplet-sum"``, ``"triplet-max"``,
``"triplet-weighted"``), e.g. from a config file or a papermill parameter.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "nt_xent",
    "triplet_sum",
    "triplet_max",
    "triplet_weighted",
    "polynomial",
    "get_loss",
    "LOSSES",
    "negative_response",
]

PAPER_TAU = 0.07
PAPER_MARGIN = 0.2
# Wei et al. / Mei et al. sec. 3.2: G_pos = 0.5 - 0.7 s + 0.2 s^2, G_neg = 0.03 - 0.4 s + 0.9 s^2
PAPER_POS_COEFFS = (0.5, -0.7, 0.2)
PAPER_NEG_COEFFS = (0.03, -0.4, 0.9)


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


def _check(sim: torch.Tensor, same_item: torch.Tensor | None) -> torch.Tensor:
    """Validate inputs; return the boolean ``[B, B]`` mask of usable negatives."""
    if not isinstance(sim, torch.Tensor) or sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        shape = tuple(sim.shape) if isinstance(sim, torch.Tensor) else type(sim).__name__
        raise ValueError(f"`sim` must be a square [B, B] similarity matrix (rows audios, columns captions), "
                         f"got {shape}")
    if not torch.is_floating_point(sim):
        raise ValueError(f"`sim` must be a floating-point tensor, got {sim.dtype}")
    b = sim.shape[0]
    negatives = ~torch.eye(b, dtype=torch.bool, device=sim.device)
    if same_item is not None:
        if not isinstance(same_item, torch.Tensor) or same_item.dtype != torch.bool or same_item.shape != sim.shape:
            got = (f"{same_item.dtype} {tuple(same_item.shape)}" if isinstance(same_item, torch.Tensor)
                   else type(same_item).__name__)
            raise ValueError(f"`same_item` must be a boolean [B, B] mask like `sim` {tuple(sim.shape)}, got {got}")
        negatives = negatives & ~same_item.to(sim.device)
    return negatives


def _combine(a2t: torch.Tensor, t2a: torch.Tensor, direction_reduction: str) -> torch.Tensor:
    if direction_reduction == "sum":
        return a2t + t2a
    if direction_reduction == "mean":
        return 0.5 * (a2t + t2a)
    raise ValueError(f"`direction_reduction` must be 'sum' or 'mean', got {direction_reduction!r}")


def polynomial(s: torch.Tensor, coeffs: Sequence[float]) -> torch.Tensor:
    """``sum_p coeffs[p] * s**p`` (coefficients in increasing order of power), Horner's scheme."""
    out = torch.zeros_like(s)
    for c in reversed(tuple(coeffs)):  # loop over polynomial order, not over data
        out = out * s + c
    return out


# ---------------------------------------------------------------------------------------------------------
# the four losses
# ---------------------------------------------------------------------------------------------------------


def nt_xent(
    sim: torch.Tensor,
    tau: float | torch.Tensor = PAPER_TAU,
    same_item: torch.Tensor | None = None,
    direction_reduction: str = "sum",
) -> torch.Tensor:
    """NT-Xent, eq. (7): ``-1/B sum_i [log softmax_j(s_ij/tau)_i + log softmax_j(s_ji/tau)_i]``.

    Each row (audio -> captions) and each column (caption -> audios) is a ``B``-way classification of
    the positive among the batch; this equals ``cross_entropy(sim / tau, arange(B))`` plus the same on
    ``sim.T``. Pairs marked in ``same_item`` are removed from the softmax denominators.

    Args:
        tau: temperature (float, or a tensor for a learnable temperature). Paper: 0.07.
    """
    negatives = _check(sim, same_item)
    if isinstance(tau, torch.Tensor):
        if (tau <= 0).any():
            raise ValueError("`tau` must be positive")
    elif tau <= 0:
        raise ValueError(f"`tau` must be positive, got {tau}")
    logits = sim / tau
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    logits = logits.masked_fill(~(negatives | eye), float("-inf"))
    pos = logits.diagonal()
    # -log softmax at the diagonal, per row (a2t) and per column (t2a); identical to F.cross_entropy with
    # labels arange(B), written out because it also runs under torch.func.vmap
    a2t = (torch.logsumexp(logits, 1) - pos).mean()
    t2a = (torch.logsumexp(logits, 0) - pos).mean()
    return _combine(a2t, t2a, direction_reduction)


def _hinge_costs(sim: torch.Tensor, negatives: torch.Tensor, margin: float):
    pos = sim.diagonal()
    # a2t: anchor audio i (row), negative captions j: [m + s_ij - s_ii]_+
    cost_a2t = F.relu(margin + sim - pos.unsqueeze(1)).masked_fill(~negatives, 0.0)
    # t2a: anchor caption i (column), negative audios j: [m + s_ji - s_ii]_+
    cost_t2a = F.relu(margin + sim - pos.unsqueeze(0)).masked_fill(~negatives, 0.0)
    return cost_a2t, cost_t2a


def triplet_sum(
    sim: torch.Tensor,
    margin: float = PAPER_MARGIN,
    same_item: torch.Tensor | None = None,
    direction_reduction: str = "sum",
) -> torch.Tensor:
    """Triplet-sum, eq. (2): ``1/B sum_i sum_{j!=i} [m + s_ij - s_ii]_+ + [m + s_ji - s_ii]_+``."""
    negatives = _check(sim, same_item)
    cost_a2t, cost_t2a = _hinge_costs(sim, negatives, margin)
    b = sim.shape[0]
    return _combine(cost_a2t.sum() / b, cost_t2a.sum() / b, direction_reduction)


def triplet_max(
    sim: torch.Tensor,
    margin: float = PAPER_MARGIN,
    same_item: torch.Tensor | None = None,
    direction_reduction: str = "sum",
) -> torch.Tensor:
    """Triplet-max, eq. (3): the hardest negative per anchor, ``1/B sum_i max_j [m + s_ij - s_ii]_+ + ...``.

    The hinge is monotonic, so the maximum hinge is the hinge of the most similar negative; an anchor
    without any usable negative contributes 0.
    """
    negatives = _check(sim, same_item)
    cost_a2t, cost_t2a = _hinge_costs(sim, negatives, margin)
    b = sim.shape[0]
    return _combine(cost_a2t.amax(1).sum() / b, cost_t2a.amax(0).sum() / b, direction_reduction)


def triplet_weighted(
    sim: torch.Tensor,
    margin: float = PAPER_MARGIN,
    pos_coeffs: Sequence[float] = PAPER_POS_COEFFS,
    neg_coeffs: Sequence[float] = PAPER_NEG_COEFFS,
    same_item: torch.Tensor | None = None,
    direction_reduction: str = "sum",
) -> torch.Tensor:
    """Triplet-weighted: the maximum polynomial loss of Wei et al., eq. (4)-(6).

    For each anchor (audio row, then caption column):

    1. informative negatives are those with ``s_ij + margin > s_ii`` (Wei et al.'s mining rule);
    2. if there is none the anchor contributes 0, otherwise the hardest one ``s_neg = max_j s_ij`` is kept;
    3. ``loss_i = [G_pos(s_ii)]_+ + [G_neg(s_neg)]_+`` with ``G_pos(s) = sum_p a_p s^p`` (eq. 4) and
       ``G_neg(s) = sum_q b_q s^q`` (eq. 5); coefficients in increasing order of power.

    Eq. (6) prints a single hinge around the sum; we hinge each term at 0, as Wei et al.'s and Mei
    et al.'s code do (``G_neg`` is negative for ``0.096 < s < 0.349`` with the paper's coefficients, and a
    shared hinge would let that cancel the positive term). Mei et al.'s code (``WeightTriplet.polyloss``) also
    drops a positive that scores ``>= 1 - 1e-5`` (a left-over from unimodal metric learning) and then takes
    ``min()`` of the empty selection, which raises: their training stops on such a batch rather than skipping
    the anchor. Here no such case exists: every anchor is scored.
    The result is ``1/B`` times the sum over anchors, per direction.
    """
    negatives = _check(sim, same_item)
    pos = sim.diagonal()
    b = sim.shape[0]
    neg_inf = torch.finfo(sim.dtype).min
    masked = sim.masked_fill(~negatives, neg_inf)
    terms = []
    for hardest in (masked.amax(1), masked.amax(0)):  # a2t: per row; t2a: per column
        informative = hardest + margin > pos  # the hardest negative is informative iff any negative is
        hard = torch.where(informative, hardest, torch.zeros_like(hardest))  # keep -inf out of the polynomial
        loss = F.relu(polynomial(pos, pos_coeffs)) + F.relu(polynomial(hard, neg_coeffs))
        terms.append(torch.where(informative, loss, torch.zeros_like(loss)).sum() / b)
    return _combine(terms[0], terms[1], direction_reduction)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "nt-xent": nt_xent,
    "triplet-sum": triplet_sum,
    "triplet-max": triplet_max,
    "triplet-weighted": triplet_weighted,
}


class LossFunction:
    """A loss picked by name with fixed hyperparameters: ``loss(sim, same_item=None) -> scalar``."""

    def __init__(self, name: str, fn: Callable[..., torch.Tensor], kwargs: dict):
        self.name, self.fn, self.kwargs = name, fn, dict(kwargs)

    def __call__(self, sim: torch.Tensor, same_item: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn(sim, same_item=same_item, **self.kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.name}({args})"


def get_loss(name: str, **kwargs) -> LossFunction:
    """The loss called ``name`` (``nt-xent``, ``triplet-sum``, ``triplet-max``, ``triplet-weighted``).

    Keyword arguments fix hyperparameters (``tau``, ``margin``, ``pos_coeffs``, ``neg_coeffs``,
    ``direction_reduction``); unknown names or arguments raise a ``ValueError`` listing the valid ones.
    Underscores are accepted in place of dashes (``nt_xent``).
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    fn = LOSSES[key]
    allowed = [p for p in inspect.signature(fn).parameters if p not in {"sim", "same_item"}]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"loss {key!r} does not take {unknown}; its hyperparameters are {allowed}")
    return LossFunction(key, fn, kwargs)


# ---------------------------------------------------------------------------------------------------------
# teaching probe
# ---------------------------------------------------------------------------------------------------------


def negative_response(
    loss: str | Callable[..., torch.Tensor],
    probe: Sequence[float] | torch.Tensor,
    positive: float = 0.5,
    background: float = 0.0,
    batch_size: int = 16,
    **kwargs,
) -> dict[str, torch.Tensor]:
    """How a loss reacts to one negative: its value and gradient as the negative's similarity varies.

    Builds a ``[B, B]`` batch with every positive at ``positive``, every negative at ``background``,
    except negative ``s_01`` (audio 0, caption 1), which takes each value of ``probe``. Returns
    ``{"similarity": probe, "loss": [P], "grad": [P]}`` where ``grad = dL/ds_01``: the weight with which
    gradient descent pushes that negative away (0 = the loss ignores it).
    """
    from torch.func import grad_and_value, vmap

    fn = get_loss(loss, **kwargs) if isinstance(loss, str) else loss
    probe = torch.as_tensor(probe, dtype=torch.float64).flatten()
    base = torch.full((batch_size, batch_size), float(background), dtype=torch.float64)
    base.fill_diagonal_(float(positive))
    sims = base.expand(probe.numel(), -1, -1).clone()
    sims[:, 0, 1] = probe
    grad, values = vmap(grad_and_value(lambda s: fn(s)))(sims)  # one small batch per probe value, batched
    return {"similarity": probe, "loss": values.detach(), "grad": grad[:, 0, 1].detach()}
