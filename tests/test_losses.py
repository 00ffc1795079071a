"""The four metric-learning losses of Mei et al. (eq. 2, 3, 6, 7): hand-computed values and properties."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hybridlib.losses import (
    LOSSES,
    PAPER_MARGIN,
    PAPER_NEG_COEFFS,
    PAPER_POS_COEFFS,
    PAPER_TAU,
    get_loss,
    negative_response,
    nt_xent,
    polynomial,
    triplet_max,
    triplet_sum,
    triplet_weighted,
)

# rows audios, columns captions, diagonal positives 0.5, 0.3, 0.7
SIM = torch.tensor([[0.5, 0.4, 0.45], [0.1, 0.3, 0.2], [0.6, 0.0, 0.7]], dtype=torch.float64)
# audio 0 and audio 2 are the same clip: pairs (0, 2) and (2, 0) are not negatives
SAME = torch.zeros(3, 3, dtype=torch.bool)
SAME[0, 2] = SAME[2, 0] = True


def test_paper_hyperparameters():
    assert PAPER_TAU == 0.07 and PAPER_MARGIN == 0.2
    assert PAPER_POS_COEFFS == (0.5, -0.7, 0.2) and PAPER_NEG_COEFFS == (0.03, -0.4, 0.9)
    assert set(LOSSES) == {"nt-xent", "triplet-sum", "triplet-max", "triplet-weighted"}


def test_triplet_sum_hand_computed():
    # a2t hinges [0.2 + s_ij - s_ii]_+: row0 .1 + .15, row1 0 + .1, row2 .1 + 0        -> 0.45
    # t2a hinges [0.2 + s_ji - s_ii]_+: col0 0 + .3, col1 .3 + 0, col2 0 + 0            -> 0.60
    assert triplet_sum(SIM).item() == pytest.approx((0.45 + 0.60) / 3, abs=1e-12)


def test_triplet_max_hand_computed():
    # hardest per anchor: a2t .15, .1, .1 (= .35); t2a .3, .3, 0 (= .6)
    assert triplet_max(SIM).item() == pytest.approx((0.35 + 0.60) / 3, abs=1e-12)


def test_triplet_weighted_hand_computed():
    # G_pos(.5)=.2, G_pos(.3)=.308, G_pos(.7)=.108 ; G_neg(.45)=.03225, G_neg(.2)=-.014->0,
    # G_neg(.6)=.114, G_neg(.4)=.014
    # a2t: row0 hardest .45 (.65>.5) .23225 ; row1 hardest .2 (.4>.3) .308 ; row2 hardest .6 (.8>.7) .222
    # t2a: col0 hardest .6 (.8>.5) .314 ; col1 hardest .4 (.6>.3) .322 ; col2 hardest .45 (.65<.7) 0
    expected = (0.23225 + 0.308 + 0.222 + 0.314 + 0.322 + 0.0) / 3
    assert triplet_weighted(SIM).item() == pytest.approx(expected, abs=1e-12)


def test_nt_xent_matches_equation_7_and_cross_entropy():
    tau = 0.07
    b = SIM.shape[0]
    eq7 = -(1 / b) * sum(
        math.log(math.exp(SIM[i, i] / tau) / sum(math.exp(SIM[i, j] / tau) for j in range(b)))
        + math.log(math.exp(SIM[i, i] / tau) / sum(math.exp(SIM[j, i] / tau) for j in range(b)))
        for i in range(b)
    )
    assert nt_xent(SIM, tau=tau).item() == pytest.approx(eq7, rel=1e-12)
    sim = torch.randn(7, 7)
    labels = torch.arange(7)
    ce = F.cross_entropy(sim / 0.1, labels) + F.cross_entropy(sim.t() / 0.1, labels)
    torch.testing.assert_close(nt_xent(sim, tau=0.1), ce)
    torch.testing.assert_close(nt_xent(sim, tau=0.1, direction_reduction="mean"), ce / 2)


def test_nt_xent_learnable_temperature_gets_gradient():
    tau = torch.tensor(0.07, requires_grad=True)
    nt_xent(torch.randn(5, 5), tau=tau).backward()
    assert tau.grad is not None and torch.isfinite(tau.grad) and tau.grad.abs() > 0


def test_same_item_masking_hand_computed():
    # triplet-sum drops exactly the masked hinges: a2t (0,2)=.15, (2,0)=.1 ; t2a s_20 vs col0 .3, s_02 vs col2 0
    assert triplet_sum(SIM, same_item=SAME).item() == pytest.approx(0.35 - 0.55 / 3, abs=1e-12)
    # triplet-max falls back to the next-hardest negative: a2t .1, .1, 0 ; t2a 0, .3, 0
    assert triplet_max(SIM, same_item=SAME).item() == pytest.approx(0.5 / 3, abs=1e-12)
    # triplet-weighted: a2t row0 hardest .4 -> .214, row1 .308, row2 hardest 0.0 not informative ;
    # t2a col0 hardest .1 not informative, col1 .322, col2 hardest .2 not informative
    assert triplet_weighted(SIM, same_item=SAME).item() == pytest.approx((0.214 + 0.308 + 0.322) / 3, abs=1e-12)


def test_same_item_masking_nt_xent_removes_pairs_from_denominator():
    tau = 0.1
    logits = SIM / tau
    # row 0 (audio 0) loses caption 2; row 2 loses caption 0; column 0 loses audio 2; column 2 loses audio 0
    keep = ~SAME
    a2t = [-(logits[i, i] - torch.logsumexp(logits[i][keep[i]], 0)) for i in range(3)]
    t2a = [-(logits[i, i] - torch.logsumexp(logits[:, i][keep[:, i]], 0)) for i in range(3)]
    expected = (sum(a2t) + sum(t2a)) / 3
    torch.testing.assert_close(nt_xent(SIM, tau=tau, same_item=SAME), expected)
    assert nt_xent(SIM, tau=tau, same_item=SAME) < nt_xent(SIM, tau=tau)


def test_same_item_on_diagonal_is_ignored():
    eye = torch.eye(3, dtype=torch.bool)
    for fn in LOSSES.values():
        torch.testing.assert_close(fn(SIM, same_item=eye | SAME), fn(SIM, same_item=SAME))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_symmetric_under_transposition(name):
    sim = torch.rand(9, 9, dtype=torch.float64) * 2 - 1
    same = torch.rand(9, 9) < 0.2
    same = same | same.t()
    fn = get_loss(name)
    torch.testing.assert_close(fn(sim), fn(sim.t()))
    torch.testing.assert_close(fn(sim, same_item=same), fn(sim.t(), same_item=same.t()))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_finite(name):
    fn = get_loss(name)
    for b, same in [(16, None), (16, torch.ones(16, 16, dtype=torch.bool)), (1, None)]:
        sim = (torch.rand(b, b) * 2 - 1).requires_grad_(True)
        value = fn(sim, same_item=same)
        (grad,) = torch.autograd.grad(value, sim)
        assert torch.isfinite(value) and torch.isfinite(grad).all()
    # a batch where every pair is informative gets a non-zero gradient
    sim = torch.full((4, 4), 0.5).fill_diagonal_(0.4).requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(sim), sim)
    assert grad.diagonal().lt(0).all() and grad[0, 1] > 0


@pytest.mark.parametrize("name", ["triplet-sum", "triplet-max", "triplet-weighted"])
def test_perfect_embeddings_give_zero_triplet_loss(name):
    emb = F.normalize(torch.randn(6, 32), dim=1)
    q, _ = torch.linalg.qr(torch.randn(32, 32))
    orthogonal = q[:6]  # orthonormal rows: s_ii = 1, s_ij = 0
    assert get_loss(name)(orthogonal @ orthogonal.t()).item() == pytest.approx(0.0, abs=1e-6)
    assert get_loss(name)(emb @ emb.t()).item() >= 0.0


def test_nt_xent_perfect_embeddings_small_but_positive():
    sim = torch.eye(8, dtype=torch.float64)
    value = nt_xent(sim).item()
    # each direction: log(1 + 7 exp(-1/0.07))
    assert value == pytest.approx(2 * math.log(1 + 7 * math.exp(-1 / 0.07)), rel=1e-5)
    assert value > 0


def test_triplet_weighted_hinges_each_term_and_skips_uninformative_rows():
    # positive .3, hardest negative .2: informative (.4 > .3); G_neg(.2) = -.014 is clipped to 0
    sim = torch.tensor([[0.3, 0.2], [-1.0, 1.0]], dtype=torch.float64)
    # row0: G_pos(.3) = .308 ; row1: hardest -1 (not informative) ; col0: hardest -1 not ; col1: .2+.2 < 1
    assert triplet_weighted(sim).item() == pytest.approx(0.308 / 2, abs=1e-12)
    assert polynomial(torch.tensor(0.2, dtype=torch.float64), PAPER_NEG_COEFFS).item() == pytest.approx(-0.014)


def _weighted_reference(sim, same, margin=0.2):
    """Per-anchor loop as in Mei et al.'s code (without its 1 - 1e-5 skip), for comparison."""
    b = len(sim)
    total = 0.0
    transpose = [list(col) for col in zip(*sim)], [list(col) for col in zip(*same)]
    for mat, mask in ((sim, same), transpose):
        for i in range(b):
            pos = mat[i][i]
            negs = [mat[i][j] for j in range(b) if j != i and not mask[i][j]]
            negs = [n for n in negs if n + margin > pos]
            if not negs:
                continue
            hard = max(negs)
            total += max(0.2 * pos**2 - 0.7 * pos + 0.5, 0) + max(0.9 * hard**2 - 0.4 * hard + 0.03, 0)
    return total / b


def test_triplet_weighted_matches_loop_reference():
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        sim = torch.rand(12, 12, generator=gen, dtype=torch.float64) * 1.4 - 0.4
        same = torch.rand(12, 12, generator=gen) < 0.15
        assert triplet_weighted(sim, same_item=same).item() == pytest.approx(
            _weighted_reference(sim.tolist(), same.tolist()), abs=1e-10)


def test_get_loss_registry():
    fn = get_loss("triplet-max", margin=0.5)
    assert repr(fn) == "triplet-max(margin=0.5)"
    assert fn(SIM).item() == pytest.approx(triplet_max(SIM, margin=0.5).item())
    assert get_loss("NT_XENT", tau=0.2)(SIM).item() == pytest.approx(nt_xent(SIM, tau=0.2).item())
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        get_loss("hinge")
    with pytest.raises(ValueError, match="does not take \\['tau'\\]"):
        get_loss("triplet-sum", tau=0.1)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="square"):
        nt_xent(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="same_item"):
        triplet_sum(SIM, same_item=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="tau"):
        nt_xent(SIM, tau=0.0)
    with pytest.raises(ValueError, match="direction_reduction"):
        triplet_max(SIM, direction_reduction="avg")
    with pytest.raises(ValueError, match="floating-point"):
        triplet_sum(torch.eye(3, dtype=torch.long))


@pytest.mark.slow
def test_negative_response_shows_what_each_loss_does_with_a_negative():
    probe = torch.tensor([-0.5, 0.0, 0.32, 0.6, 0.9])
    b = 16
    # triplet-sum: every violating negative (s + .2 > .5) gets weight 1/B in both directions
    r = negative_response("triplet-sum", probe, positive=0.5, background=0.0, batch_size=b)
    torch.testing.assert_close(r["grad"], torch.tensor([0, 0, 2 / b, 2 / b, 2 / b], dtype=torch.float64))
    # triplet-max: same here (the probe is the hardest negative once it violates), zero otherwise
    r = negative_response("triplet-max", probe, positive=0.5, background=0.4, batch_size=b)
    torch.testing.assert_close(r["grad"], torch.tensor([0, 0, 0, 2 / b, 2 / b], dtype=torch.float64))
    # triplet-weighted: gradient of G_neg = 1.8 s - 0.4 when hardest and informative, in both directions;
    # at s = .32 the pair is informative (.52 > .5) but G_neg(.32) < 0 is hinged away
    r = negative_response("triplet-weighted", probe, positive=0.5, background=0.0, batch_size=b)
    expected = torch.tensor([0, 0, 0, 2 * (1.8 * 0.6 - 0.4) / b, 2 * (1.8 * 0.9 - 0.4) / b], dtype=torch.float64)
    torch.testing.assert_close(r["grad"], expected)
    # NT-Xent: weight = softmax probability / tau, grows smoothly with similarity, never exactly zero
    r = negative_response("nt-xent", probe, positive=0.5, background=0.0, batch_size=b, tau=0.1)
    assert (r["grad"] > 0).all() and (r["grad"].diff() > 0).all()
    assert r["loss"].diff().gt(0).all()


def test_loss_plots_return_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from hybridlib.viz import losses as viz

    probe = torch.linspace(-1, 1, 21)
    responses = {name: negative_response(name, probe) for name in LOSSES}
    figs = [
        viz.plot_negative_response(responses, value="grad", positive=0.5, margin=0.2),
        viz.plot_negative_response(responses, value="loss", relative=True, normalise=True, background=0.0),
        viz.plot_polynomial_weights(PAPER_POS_COEFFS, PAPER_NEG_COEFFS),
        viz.plot_temperature_weights(torch.linspace(-0.5, 0.8, 12), [0.05, 0.5], positive=0.9),
    ]
    table = pd.DataFrame({"loss": ["nt-xent", "nt-xent", "triplet-max", "triplet-max"], "batch_size": [8, 32, 8, 32],
                          "mAP@10": [40.0, 41.0, 39.0, 10.0]})
    figs.append(viz.plot_batch_size_sweep(table))
    hist = pd.DataFrame({"loss": ["nt-xent"] * 2, "batch_size": [8, 8], "epoch": [1, 2], "mAP@10": [5.0, 9.0]})
    from hybridlib.viz.training import plot_training_curves

    figs.append(plot_training_curves({"nt-xent": hist}, metric="mAP@10"))
    # the bar heights are the table's values
    bars = sorted(round(p.get_height(), 3) for p in figs[4].axes[0].patches)
    assert bars == [10.0, 39.0, 40.0, 41.0]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    fig, ax = plt.subplots()
    assert viz.plot_polynomial_weights(PAPER_POS_COEFFS, PAPER_NEG_COEFFS, ax=ax) is fig
    with pytest.raises(ValueError, match="metric"):
        viz.plot_batch_size_sweep(table, metric="R@3")
    with pytest.raises(ValueError, match="value"):
        viz.plot_negative_response(responses, value="weight")
    plt.close("all")
