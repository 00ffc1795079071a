"""Deliberately wrong answers to the exercises, written as a student would type them into a solution cell.

Each :class:`Mistake` replaces one or more solution cells (by nbgrader ``grade_id``) of an exercise; ``loses``
names the autograded test cells that must then score 0 (all others keep full marks) and ``message`` a piece
of the feedback the student must see; ``may_lose`` cells may score 0 too.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Mistake:
    assignment: str
    name: str
    replacements: dict
    loses: frozenset
    message: str
    may_lose: frozenset = field(default=frozenset())  # cells that may also score 0 (band width depends on the data)
    nbgrader: bool = True  # also submitted to the nbgrader course of tests/test_assignments_nbgrader.py

    @property
    def student(self) -> str:
        return f"mistake-{self.name}"


MAP_WITHOUT_CUTOFF = '''
def map_at_k(sim, relevant, k=10):
    ranks = pessimistic_ranks(sim, relevant)
    sorted_ranks = ranks.sort(dim=1).values
    j = torch.arange(1, sim.shape[1] + 1, dtype=torch.float64)
    precision = torch.where(torch.isfinite(sorted_ranks), j / sorted_ranks, torch.zeros_like(sorted_ranks))
    return 100 * (precision.sum(1) / relevant.sum(1)).mean().item()
'''

MAP_NORMALISED_BY_HITS = '''
def map_at_k(sim, relevant, k=10):
    ranks = pessimistic_ranks(sim, relevant)
    sorted_ranks = ranks.sort(dim=1).values
    j = torch.arange(1, sim.shape[1] + 1, dtype=torch.float64)
    hit = sorted_ranks <= k
    precision = torch.where(hit, j / sorted_ranks, torch.zeros_like(sorted_ranks))
    return 100 * (precision.sum(1) / hit.sum(1).clamp(min=1)).mean().item()
'''

RANKS_OPTIMISTIC_TIES = '''
def pessimistic_ranks(sim, relevant):
    s_me, s_other = sim.unsqueeze(2), sim.unsqueeze(1)
    irrelevant_above = ((s_other > s_me) & ~relevant.unsqueeze(1)).sum(2)  # ties counted for the relevant item
    cols = torch.arange(sim.shape[1])
    before = (s_other > s_me) | ((s_other == s_me) & (cols[None, None, :] < cols[None, :, None]))
    ranks = (irrelevant_above + (before & relevant.unsqueeze(1)).sum(2) + 1).double()
    return torch.where(relevant, ranks, torch.full_like(ranks, float("inf")))
'''

RECALL_FRACTION_FOUND = '''
def recall_at_k(sim, relevant, k):
    ranks = pessimistic_ranks(sim, relevant)
    found = ((ranks <= k) & relevant).sum(1) / relevant.sum(1)
    return 100 * found.double().mean().item()
'''

NT_XENT_WITHOUT_MASK = '''
def nt_xent(sim, same_item=None, tau=0.07):
    logits = sim / tau
    pos = logits.diagonal()
    return (torch.logsumexp(logits, dim=1) - pos).mean() + (torch.logsumexp(logits, dim=0) - pos).mean()
'''

NT_XENT_WITH_LOOP = '''
def nt_xent(sim, same_item=None, tau=0.07):
    b = sim.shape[0]
    total = 0.0
    for i in range(b):  # one anchor at a time: right values, but not loop-free
        keep = torch.ones(b, dtype=torch.bool) if same_item is None else (~same_item[i]).clone()
        keep[i] = True
        row = sim[i][keep] / tau
        keep_col = torch.ones(b, dtype=torch.bool) if same_item is None else (~same_item[:, i]).clone()
        keep_col[i] = True
        col = sim[:, i][keep_col] / tau
        total = total + (torch.logsumexp(row, 0) - sim[i, i] / tau) + (torch.logsumexp(col, 0) - sim[i, i] / tau)
    return total / b
'''

TRIPLET_MAX_WITHOUT_MASK = '''
def triplet_max(sim, same_item=None, margin=0.2):
    b = sim.shape[0]
    negatives = ~torch.eye(b, dtype=torch.bool)
    pos = sim.diagonal()
    cost_a2t = F.relu(margin + sim - pos[:, None]).masked_fill(~negatives, 0.0)
    cost_t2a = F.relu(margin + sim - pos[None, :]).masked_fill(~negatives, 0.0)
    return cost_a2t.amax(dim=1).mean() + cost_t2a.amax(dim=0).mean()
'''

TRIPLET_SUM_INSTEAD_OF_MAX = '''
def triplet_max(sim, same_item=None, margin=0.2):
    b = sim.shape[0]
    negatives = ~torch.eye(b, dtype=torch.bool)
    if same_item is not None:
        negatives = negatives & ~same_item
    pos = sim.diagonal()
    cost_a2t = F.relu(margin + sim - pos[:, None]).masked_fill(~negatives, 0.0)
    cost_t2a = F.relu(margin + sim - pos[None, :]).masked_fill(~negatives, 0.0)
    return cost_a2t.sum(dim=1).mean() + cost_t2a.sum(dim=0).mean()
'''

MEAN_COUNTS_PADDING = '''
def masked_mean(x, mask):
    return x.mean(dim=1)
'''

GLOBAL_TOKEN_WITHOUT_BIAS = '''
def global_token(x, lengths, bias):
    return masked_mean(x, valid_mask(lengths, x.shape[1]))
'''

POOL_INVERTED_PADDING_MASK = '''
def pool(pooling, frames, lengths):
    batch, steps, _ = frames.shape
    valid = valid_mask(lengths, steps)
    x = pooling.input_proj(frames)
    token = global_token(x, lengths, pooling.global_bias)
    x = x + sinusoidal_encoding(steps, pooling.d_model, dtype=x.dtype)[None]
    seq = torch.cat([token[:, None], x], dim=1)
    padding = torch.cat([torch.ones(batch, 1, dtype=torch.bool), valid], dim=1)  # True = valid: inverted
    for layer in pooling.layers:
        seq, _ = layer(seq, padding)
    return seq[:, 0]
'''

LATE_FUSION_IGNORES_PRESENT = '''
def late_fusion(audio, metadata, present):
    return audio + metadata
'''

WEIGHTS_NOT_RENORMALISED = '''
def effective_weights(weights, available, num_items):
    q, m = weights.shape
    w = weights[:, None, :].expand(q, num_items, m)
    return w if available is None else w * available[None].to(w.dtype)
'''

SOFTMAX_OVER_QUERIES = '''
def query_weights(query, weight, bias):
    return torch.softmax(query @ weight.T + bias, dim=0)
'''

GAIN_WITHOUT_BASELINE = '''
def gain_curve(hybrid, baseline):
    return {float(f): float(v) for f, v in hybrid.items()}


def retained_gain(gains, fraction):
    return gains[float(fraction)] / gains[0.0]
'''

EFFECTIVE_NEGATIVES_WITH_DIAGONAL = '''
def effective_negatives(loss_fn, sim):
    x = sim.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(x), x)
    g = grad.abs()
    total = g.sum(1)
    active = total > 0
    return float((total[active] ** 2 / (g[active] ** 2).sum(1)).mean()) if bool(active.any()) else 0.0
'''

MISTAKES = [
    Mistake("01_metrics", "map-no-cutoff", {"map": MAP_WITHOUT_CUTOFF}, frozenset({"test_map_single", "test_map_multi"}),
            "counts a relevant item outside the top 10"),
    Mistake("01_metrics", "map-divides-by-hits", {"map": MAP_NORMALISED_BY_HITS}, frozenset({"test_map_multi"}),
            "not by the number found in the top k", nbgrader=False),
    Mistake("01_metrics", "optimistic-ties", {"ranks": RANKS_OPTIMISTIC_TIES},
            frozenset({"test_ranks_ties", "test_map_single", "test_map_multi", "test_recall"}),
            "ties are pessimistic"),
    Mistake("01_metrics", "recall-fraction-found", {"recall": RECALL_FRACTION_FOUND}, frozenset({"test_recall"}),
            "ANY of its relevant items", nbgrader=False),
    Mistake("02_losses", "nt-xent-no-mask", {"nt_xent": NT_XENT_WITHOUT_MASK}, frozenset({"test_nt_xent_mask"}),
            "uses captions of the same clip as negatives"),
    Mistake("02_losses", "nt-xent-loop", {"nt_xent": NT_XENT_WITH_LOOP}, frozenset({"test_loop_free"}),
            "must be loop-free"),
    Mistake("02_losses", "triplet-max-no-mask", {"triplet_max": TRIPLET_MAX_WITHOUT_MASK},
            frozenset({"test_triplet_max_mask"}), "picks a caption of the same clip as the hardest negative",
            nbgrader=False),
    Mistake("02_losses", "triplet-sum-not-max", {"triplet_max": TRIPLET_SUM_INSTEAD_OF_MAX},
            frozenset({"test_triplet_max", "test_triplet_max_mask"}), "not the sum over all negatives", nbgrader=False),
    Mistake("03_pooling", "mean-counts-padding", {"masked_mean": MEAN_COUNTS_PADDING},
            frozenset({"test_masked_mean", "test_global_token", "test_pool"}), "counts padded frames"),
    Mistake("03_pooling", "global-token-no-bias", {"global_token": GLOBAL_TOKEN_WITHOUT_BIAS},
            frozenset({"test_global_token", "test_pool"}), "add the learned bias", nbgrader=False),
    Mistake("03_pooling", "inverted-padding-mask", {"pool": POOL_INVERTED_PADDING_MASK}, frozenset({"test_pool"}),
            "True where a position must be IGNORED"),
    Mistake("04_fusion", "late-fusion-ignores-present", {"late_fusion": LATE_FUSION_IGNORES_PRESENT},
            frozenset({"test_late_fusion"}), "must keep their audio embedding unchanged"),
    Mistake("04_fusion", "weights-not-renormalised", {"effective_weights": WEIGHTS_NOT_RENORMALISED},
            frozenset({"test_effective_weights", "test_mix_scores"}), "renormalise the remaining weights"),
    Mistake("04_fusion", "softmax-over-queries", {"query_weights": SOFTMAX_OVER_QUERIES},
            frozenset({"test_query_weights"}), "softmax over the modalities", nbgrader=False),
    Mistake("05_metadata_experiment", "gain-without-baseline", {"gains": GAIN_WITHOUT_BASELINE},
            frozenset({"test_gains", "test_gain_pp"}), "MINUS the baseline", may_lose=frozenset({"test_retained"})),
    Mistake("06_research_question", "diagonal-as-negative", {"effective_negatives": EFFECTIVE_NEGATIVES_WITH_DIAGONAL},
            frozenset({"test_effective_negatives"}), "exclude the diagonal"),

]

# every mistake runs in-process (tests/test_assignments.py); these (at least two per implementation exercise)
# also go through nbgrader, which costs a notebook execution each
NBGRADER_MISTAKES = [m for m in MISTAKES if m.nbgrader]
