"""Retrieval metrics: recall at k and mAP@k for text-to-audio and audio-to-text retrieval.

Both directions reduce to one problem: every row of a similarity matrix is a query, its columns are the
candidates, and a subset of the columns is relevant. For each relevant candidate we compute its 1-based
rank in the row sorted by descending similarity, without sorting anything:

    rank(r) = #{irrelevant c : s_c >= s_r} + #{relevant c ranked before r} + 1

* **Ties are broken pessimistically**: an irrelevant candidate with exactly the same score as a relevant
  one is ranked *before* it. A constant similarity matrix therefore scores R@1 = 0 (not 100, as an
  optimistic or index-order tie break could give), so a degenerate model cannot look good. Ties among
  relevant candidates are broken by column order (any order yields the same metrics).
* Counting ``>=`` over a row is a single pass over the matrix (no argsort, no Python loop over queries);
  rows are processed in cache-sized chunks, so a large ``[Q, A]`` matrix never needs a matrix-sized
  temporary. Everything runs on the tensor's own device (CPU or CUDA).

Definitions (values are returned in percent, 0-100, as the papers report them):

* ``R@k``: fraction of queries whose best-ranked relevant candidate is within the top k. For
  text-to-audio each caption has one relevant audio; for audio-to-text an audio counts as a hit when any
  of its captions is within the top k (the convention of Mei et al.'s evaluation code).
* ``mAP@k``: mean over queries of ``AP@k = (1/n_rel) * sum_{relevant r with rank <= k} j_r / rank_r``
  where ``j_r`` is the number of relevant candidates ranked at or before ``r``. With one relevant item
  this is ``1/rank`` if ``rank <= k`` else 0 (the DCASE task 6b definition used by Primus & Widmer);
  for audio-to-text it averages precision over the audio's captions ranked within k, normalised by the
  number of its captions (Mei et al.'s code divides by 5). The normaliser ``n_rel`` equals the also
  common ``min(n_rel, k)`` whenever ``n_rel <= k``, true for Clotho and AudioCaps.

Queries without any relevant candidate cannot be scored; they are dropped with a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch

__all__ = [
    "text_to_audio",
    "audio_to_text",
    "retrieval_metrics",
    "per_query_metrics",
    "relevant_ranks",
    "bootstrap_ci",
    "target_to_relevance",
]

DEFAULT_KS = (1, 5, 10)
# Rows are compared in chunks of ~256k elements: the temporaries stay in cache and are recycled by the
# allocator, which measured ~15x faster on CPU than one matrix-sized temporary (fresh pages every call).
DEFAULT_CHUNK_ELEMENTS = 1 << 18


# ---------------------------------------------------------------------------------------------------------
# input checks and relevance structures
# ---------------------------------------------------------------------------------------------------------


def _check_sim(sim: torch.Tensor, name: str = "sim") -> torch.Tensor:
    if not isinstance(sim, torch.Tensor):
        sim = torch.as_tensor(sim)
    if sim.dim() != 2:
        raise ValueError(f"`{name}` must be a 2-D similarity matrix, got shape {tuple(sim.shape)}")
    if sim.shape[0] == 0 or sim.shape[1] == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(sim.shape)})")
    if not torch.is_floating_point(sim):
        sim = sim.float()
    # a reduction needs no matrix-sized temporary; only a NaN (or inf - inf) sum needs the exact check
    if torch.isnan(sim.sum()) and torch.isnan(sim).any():
        raise ValueError(f"`{name}` contains NaN similarities; ranks would be undefined")
    return sim.detach().contiguous()  # a transposed view would make every row pass strided


def _check_target(target, n_queries: int, n_items: int, name: str = "target") -> torch.Tensor:
    target = torch.as_tensor(target)
    if target.dim() != 1 or target.shape[0] != n_queries:
        raise ValueError(f"`{name}` must have shape [{n_queries}] (one audio index per caption), "
                         f"got {tuple(target.shape)}")
    if torch.is_floating_point(target) or target.dtype == torch.bool:
        raise ValueError(f"`{name}` must hold integer audio indices, got dtype {target.dtype}")
    target = target.long()
    if n_queries and (target.min() < 0 or target.max() >= n_items):
        bad = target[(target < 0) | (target >= n_items)][0].item()
        raise ValueError(f"`{name}` holds audio index {bad}, outside [0, {n_items})")
    return target


def target_to_relevance(target, n_items: int) -> torch.Tensor:
    """Boolean ``[Q, n_items]`` relevance matrix from one relevant item index per query."""
    target = torch.as_tensor(target).long()
    rel = torch.zeros(target.shape[0], n_items, dtype=torch.bool, device=target.device)
    rel[torch.arange(target.shape[0], device=target.device), target] = True
    return rel


def _padded_from_pairs(rows: torch.Tensor, cols: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Group (row, col) pairs into a padded ``[n_rows, R]`` column-index tensor and its validity mask.

    ``rows`` must be sorted (stable, so columns keep their order within a row).
    """
    device = rows.device
    counts = torch.bincount(rows, minlength=n_rows)
    width = int(counts.max().item()) if rows.numel() else 0
    idx = torch.zeros(n_rows, max(width, 1), dtype=torch.long, device=device)
    mask = torch.zeros(n_rows, max(width, 1), dtype=torch.bool, device=device)
    if rows.numel():
        starts = torch.cumsum(counts, 0) - counts
        pos = torch.arange(rows.numel(), device=device) - starts[rows]
        idx[rows, pos] = cols
        mask[rows, pos] = True
    return idx, mask


def _relevance_from_bool(relevance: torch.Tensor, shape: tuple[int, int], name: str):
    relevance = torch.as_tensor(relevance)
    if relevance.dtype != torch.bool or tuple(relevance.shape) != tuple(shape):
        raise ValueError(f"`{name}` must be a boolean relevance matrix of shape {tuple(shape)}, "
                         f"got {relevance.dtype} {tuple(relevance.shape)}")
    rows, cols = relevance.nonzero(as_tuple=True)  # row-major order: rows sorted, columns ascending
    return _padded_from_pairs(rows, cols, shape[0])


# ---------------------------------------------------------------------------------------------------------
# ranks
# ---------------------------------------------------------------------------------------------------------


def relevant_ranks(
    sim: torch.Tensor,
    rel_idx: torch.Tensor,
    rel_mask: torch.Tensor,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> torch.Tensor:
    """Pessimistic 1-based ranks of the relevant columns of each row.

    Args:
        sim: ``[N, M]`` scores, rows are queries.
        rel_idx: ``[N, R]`` column indices of the relevant candidates (padded).
        rel_mask: ``[N, R]`` True where ``rel_idx`` is a real entry.
        chunk_elements: rows are processed ``chunk_elements // M`` at a time.

    Returns:
        ``[N, R]`` float ranks, ``inf`` at padded positions.
    """
    n, m = sim.shape
    r = rel_idx.shape[1]
    rel_idx = rel_idx.to(sim.device)
    rel_mask = rel_mask.to(sim.device)
    ranks = torch.empty(n, r, dtype=torch.float32, device=sim.device)
    rows_per_chunk = max(1, chunk_elements // max(1, m))
    pos = torch.arange(r, device=sim.device)
    for start in range(0, n, rows_per_chunk):  # loop over chunks of rows, not over queries
        stop = min(n, start + rows_per_chunk)
        s = sim[start:stop]
        idx, mask = rel_idx[start:stop], rel_mask[start:stop]
        s_rel = s.gather(1, idx)  # [c, R]
        if r == 1:
            rank = (s >= s_rel).sum(1, keepdim=True, dtype=torch.int32).float()  # counts the item itself
            ranks[start:stop] = torch.where(mask, rank, torch.full_like(rank, math.inf))
            continue
        # all candidates scoring >= each relevant score (includes every tied relevant one); one pass over
        # the chunk per relevant slot (R is small: 5 captions per clip), not a loop over queries
        n_ge_all = torch.stack([(s >= s_rel[:, i : i + 1]).sum(1, dtype=torch.int32) for i in range(r)], 1)
        # relevant vs relevant: how many relevant score >= me, and how many precede me (ties by order)
        other_ge = (s_rel.unsqueeze(1) >= s_rel.unsqueeze(2)) & mask.unsqueeze(1)  # [c, R(me), R(other)]
        n_rel_ge = other_ge.sum(2)
        before = (s_rel.unsqueeze(1) > s_rel.unsqueeze(2)) | (
            (s_rel.unsqueeze(1) == s_rel.unsqueeze(2)) & (pos.view(1, 1, r) < pos.view(1, r, 1))
        )
        j = (before & mask.unsqueeze(1)).sum(2) + 1
        rank = (n_ge_all - n_rel_ge + j).float()
        ranks[start:stop] = torch.where(mask, rank, torch.full_like(rank, math.inf))
    return ranks


# ---------------------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------------------


def per_query_metrics(
    sim: torch.Tensor,
    rel_idx: torch.Tensor,
    rel_mask: torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    map_k: int = 10,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[str, torch.Tensor]:
    """Per-query values in [0, 1]: ``{"mAP@k": [N], "R@k": [N] ...}`` plus ``"rank"`` (best relevant rank).

    Rows without relevant candidates get NaN.
    """
    ranks = relevant_ranks(sim, rel_idx, rel_mask, chunk_elements).double()  # exact j / rank
    n_rel = rel_mask.sum(1).to(ranks.device, ranks.dtype)
    valid = n_rel > 0
    sorted_ranks, _ = ranks.sort(dim=1)  # relevant ranks ascending, inf padding last
    j = torch.arange(1, ranks.shape[1] + 1, device=ranks.device, dtype=ranks.dtype)
    precision = torch.where(sorted_ranks <= map_k, j / sorted_ranks, torch.zeros_like(sorted_ranks))
    ap = precision.sum(1) / n_rel.clamp(min=1)
    best = sorted_ranks[:, 0]
    nan = torch.full_like(ap, math.nan)
    out = {f"mAP@{map_k}": torch.where(valid, ap, nan)}
    for k in ks:
        out[f"R@{k}"] = torch.where(valid, (best <= k).float(), nan)
    out["rank"] = torch.where(valid, best, nan)
    return out


def _summarise(per_query: dict[str, torch.Tensor], ks, map_k) -> dict[str, float]:
    keys = [f"mAP@{map_k}", *[f"R@{k}" for k in ks]]
    valid = ~torch.isnan(per_query[keys[0]])
    n_bad = int((~valid).sum())
    if n_bad:
        warnings.warn(f"{n_bad} of {valid.numel()} queries have no relevant item and are not scored",
                      stacklevel=3)
    if not valid.any():
        raise ValueError("no query has a relevant item; metrics are undefined")
    return {key: 100.0 * per_query[key][valid].double().mean().item() for key in keys}


def _check_ks(ks, map_k):
    ks = tuple(int(k) for k in ks)
    if any(k < 1 for k in ks) or map_k < 1:
        raise ValueError(f"cut-offs must be >= 1, got ks={ks}, map_k={map_k}")
    return ks


def retrieval_metrics(
    sim: torch.Tensor,
    relevance: torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    map_k: int = 10,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[str, float]:
    """Metrics for any direction with several relevant candidates per query (multi-positive variant).

    Args:
        sim: ``[N, M]`` scores, each row one query.
        relevance: boolean ``[N, M]``; True marks the candidates relevant to the row's query (e.g.
            several audios that match one caption).
    """
    ks = _check_ks(ks, map_k)
    sim = _check_sim(sim)
    rel_idx, rel_mask = _relevance_from_bool(relevance.to(sim.device), tuple(sim.shape), "relevance")
    return _summarise(per_query_metrics(sim, rel_idx, rel_mask, ks, map_k, chunk_elements), ks, map_k)


def _t2a_structures(sim, target):
    if isinstance(target, torch.Tensor) and target.dtype == torch.bool:
        return _relevance_from_bool(target.to(sim.device), tuple(sim.shape), "target")
    target = _check_target(target, sim.shape[0], sim.shape[1]).to(sim.device)
    return target.unsqueeze(1), torch.ones(sim.shape[0], 1, dtype=torch.bool, device=sim.device)


def _a2t_structures(sim, target):
    if isinstance(target, torch.Tensor) and target.dtype == torch.bool:
        # target is a [Q, A] relevance matrix; audio-to-text needs its transpose
        return _relevance_from_bool(target.to(sim.device).t(), tuple(sim.shape), "target (transposed)")
    target = _check_target(target, sim.shape[1], sim.shape[0]).to(sim.device)
    order = torch.sort(target, stable=True).indices  # captions grouped by their audio, in caption order
    return _padded_from_pairs(target[order], order, sim.shape[0])


def text_to_audio(
    sim: torch.Tensor,
    target,
    ks: Sequence[int] = DEFAULT_KS,
    map_k: int = 10,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[str, float]:
    """Text-to-audio retrieval metrics in percent: ``{"mAP@10", "R@1", "R@5", "R@10"}``.

    Args:
        sim: ``[Q, A]`` similarities, one row per caption (query), one column per audio.
        target: ``[Q]`` index of the audio each caption describes, or a boolean ``[Q, A]`` relevance
            matrix when several audios match a caption (multi-positive variant).
        ks: recall cut-offs. map_k: cut-off of mAP.
    """
    ks = _check_ks(ks, map_k)
    sim = _check_sim(sim)
    rel_idx, rel_mask = _t2a_structures(sim, target)
    return _summarise(per_query_metrics(sim, rel_idx, rel_mask, ks, map_k, chunk_elements), ks, map_k)


def audio_to_text(
    sim: torch.Tensor,
    target,
    ks: Sequence[int] = DEFAULT_KS,
    map_k: int = 10,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[str, float]:
    """Audio-to-text retrieval metrics in percent: ``{"mAP@10", "R@1", "R@5", "R@10"}``.

    Args:
        sim: ``[A, Q]`` similarities, one row per audio (query), one column per caption
            (i.e. the transpose of the text-to-audio matrix).
        target: ``[Q]`` index of the audio each caption describes (the same vector as for
            :func:`text_to_audio`), or a boolean ``[Q, A]`` relevance matrix.

    An audio is a hit at k when its best-ranked caption is within the top k; mAP@k averages the
    precision at each of its captions ranked within k, divided by its number of captions.
    """
    ks = _check_ks(ks, map_k)
    sim = _check_sim(sim)
    rel_idx, rel_mask = _a2t_structures(sim, target)
    return _summarise(per_query_metrics(sim, rel_idx, rel_mask, ks, map_k, chunk_elements), ks, map_k)


# ---------------------------------------------------------------------------------------------------------
# confidence intervals
# ---------------------------------------------------------------------------------------------------------


def bootstrap_ci(
    sim: torch.Tensor,
    target,
    direction: str = "t2a",
    ks: Sequence[int] = DEFAULT_KS,
    map_k: int = 10,
    n_boot: int = 1000,
    level: float = 0.95,
    groups=None,
    seed: int = 0,
) -> dict[str, tuple[float, float, float]]:
    """Percentile-bootstrap confidence intervals of the metrics: ``{name: (value, low, high)}`` in percent.

    Queries are resampled with replacement ``n_boot`` times (all resamples at once, no loop). The five
    captions of one Clotho clip are not independent queries, so for text-to-audio pass
    ``groups=target`` to resample whole clips (a cluster bootstrap); the interval then reflects the
    variation over audio clips, which is what a different test set would change.

    Args:
        direction: ``"t2a"`` (``sim`` is ``[Q, A]``) or ``"a2t"`` (``sim`` is ``[A, Q]``).
        groups: optional ``[N]`` integer group id per query row (rows of ``sim``).
    """
    if direction not in {"t2a", "a2t"}:
        raise ValueError(f"`direction` must be 't2a' or 'a2t', got {direction!r}")
    if not 0 < level < 1:
        raise ValueError(f"`level` must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"`n_boot` must be >= 1, got {n_boot}")
    ks = _check_ks(ks, map_k)
    sim = _check_sim(sim)
    structures = _t2a_structures if direction == "t2a" else _a2t_structures
    rel_idx, rel_mask = structures(sim, target)
    per_query = per_query_metrics(sim, rel_idx, rel_mask, ks, map_k)
    keys = [f"mAP@{map_k}", *[f"R@{k}" for k in ks]]
    valid = ~torch.isnan(per_query[keys[0]])
    values = torch.stack([per_query[k] for k in keys], 1)[valid].double().cpu()  # [n, metrics]
    if groups is None:
        group_ids = torch.arange(values.shape[0])
    else:
        groups = torch.as_tensor(groups).cpu()
        if groups.shape != (sim.shape[0],):
            raise ValueError(f"`groups` must have shape [{sim.shape[0]}] (one id per row of sim), "
                             f"got {tuple(groups.shape)}")
        group_ids = torch.unique(groups[valid.cpu()], return_inverse=True)[1]
    n_groups = int(group_ids.max()) + 1
    sums = torch.zeros(n_groups, values.shape[1], dtype=torch.float64).index_add_(0, group_ids, values)
    counts = torch.bincount(group_ids, minlength=n_groups).double()
    gen = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, n_groups, (n_boot, n_groups), generator=gen)
    # how often each group is drawn in each resample; a matrix product then sums the resamples
    weights = torch.zeros(n_boot, n_groups, dtype=torch.float64).scatter_add_(
        1, draws, torch.ones(n_boot, n_groups, dtype=torch.float64))
    boot = (weights @ sums) / (weights @ counts).unsqueeze(1)  # [n_boot, metrics]
    alpha = (1 - level) / 2
    low = torch.quantile(boot, alpha, dim=0)
    high = torch.quantile(boot, 1 - alpha, dim=0)
    point = values.mean(0)
    return {k: (100 * point[i].item(), 100 * low[i].item(), 100 * high[i].item()) for i, k in enumerate(keys)}
