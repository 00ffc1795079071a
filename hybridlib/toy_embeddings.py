"""Synthetic "frozen encoder" embeddings for comparing metric-learning losses in seconds on a CPU.

Mei et al. (Table 2) train only projection heads on top of frozen pretrained encoders and find that
triplet-max and triplet-weighted degrade badly when the batch grows from 32 to 128 (they "do not
converge"), while triplet-sum and NT-Xent are stable. This module builds a miniature of that setting:

* every item (an "audio clip") has a latent meaning ``z = concept centre + item_scale * noise``, drawn from
  ``n_concepts`` concepts, so a batch contains near-duplicates as in real captioning data;
* the frozen audio encoder gives ``tanh(W_a z) + audio_noise * noise``; each of the item's captions gives
  ``tanh(W_t (z + caption_noise * noise))`` (captions describe the clip imperfectly);
* both feature sets get a large shared offset (``offset``): pretrained embeddings are anisotropic, i.e.
  all features point roughly the same way and random pairs have a high cosine similarity;
* the trainable model is one linear projection per modality into a shared ``embed_dim`` space
  (:class:`ProjectionHeads`), trained with Adam at a fixed learning rate for a fixed number of epochs,
  exactly the knobs of Mei et al.'s batch-size study.

:func:`batch_size_sweep` trains every (loss, batch size, seed) combination and evaluates text-to-audio
retrieval on held-out items with :func:`hybridlib.metrics.text_to_audio`. It also records the *embedding
spread*, the mean cosine similarity between different test audios (close to 1 = collapsed space).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hybridlib.losses import get_loss
from hybridlib.metrics import text_to_audio

__all__ = [
    "ToyRetrievalData",
    "make_toy_data",
    "ProjectionHeads",
    "ToyRun",
    "train_toy",
    "evaluate_toy",
    "heldout_similarity",
    "batch_size_sweep",
    "mean_pairwise_cosine",
]


@dataclass
class ToyRetrievalData:
    """Frozen features of a synthetic audio-caption dataset (``C`` captions per item)."""

    train_audio: torch.Tensor  # [N, F]
    train_captions: torch.Tensor  # [N, C, F]
    test_audio: torch.Tensor  # [M, F]
    test_captions: torch.Tensor  # [M, C, F]
    train_concepts: torch.Tensor  # [N] concept id of each item
    test_concepts: torch.Tensor  # [M]
    params: dict = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return self.train_audio.shape[1]

    def describe(self) -> dict:
        """Shapes and sizes (deterministic, for printing)."""
        return {
            "train_audio": list(self.train_audio.shape),
            "train_captions": list(self.train_captions.shape),
            "test_audio": list(self.test_audio.shape),
            "test_captions": list(self.test_captions.shape),
            "concepts": int(self.params.get("n_concepts", 0)),
        }


def make_toy_data(
    n_train: int = 4000,
    n_test: int = 500,
    n_concepts: int = 50,
    latent_dim: int = 32,
    feature_dim: int = 64,
    captions_per_item: int = 5,
    item_scale: float = 0.35,
    caption_noise: float = 1.0,
    audio_noise: float = 0.3,
    offset: float = 3.0,
    seed: int = 0,
) -> ToyRetrievalData:
    """Generate the synthetic dataset (see the module docstring); ``offset=0`` gives isotropic features."""
    if min(n_train, n_test, n_concepts, latent_dim, feature_dim, captions_per_item) < 1:
        raise ValueError("all sizes of the toy dataset must be >= 1")
    gen = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    centres = torch.randn(n_concepts, latent_dim, generator=gen)
    concepts = torch.randint(0, n_concepts, (n,), generator=gen)
    z = centres[concepts] + item_scale * torch.randn(n, latent_dim, generator=gen)
    w_audio = torch.randn(latent_dim, feature_dim, generator=gen) / latent_dim**0.5
    w_text = torch.randn(latent_dim, feature_dim, generator=gen) / latent_dim**0.5
    audio = torch.tanh(z @ w_audio) + audio_noise * torch.randn(n, feature_dim, generator=gen)
    caption_z = z.unsqueeze(1) + caption_noise * torch.randn(n, captions_per_item, latent_dim, generator=gen)
    captions = torch.tanh(caption_z @ w_text)
    audio = audio + offset * torch.randn(feature_dim, generator=gen)  # shared direction: anisotropy
    captions = captions + offset * torch.randn(feature_dim, generator=gen)
    params = dict(n_train=n_train, n_test=n_test, n_concepts=n_concepts, latent_dim=latent_dim,
                  feature_dim=feature_dim, captions_per_item=captions_per_item, item_scale=item_scale,
                  caption_noise=caption_noise, audio_noise=audio_noise, offset=offset, seed=seed)
    return ToyRetrievalData(audio[:n_train], captions[:n_train], audio[n_train:], captions[n_train:],
                            concepts[:n_train], concepts[n_train:], params)


class ProjectionHeads(nn.Module):
    """One linear projection per modality into a shared space; outputs are L2-normalised (eq. 1)."""

    def __init__(self, audio_dim: int, text_dim: int, embed_dim: int = 32):
        super().__init__()
        self.audio = nn.Linear(audio_dim, embed_dim)
        self.text = nn.Linear(text_dim, embed_dim)

    def embed_audio(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio(x), dim=-1)

    def embed_text(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(x), dim=-1)

    def forward(self, audio: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        """``[B, B]`` cosine similarities, rows audios, columns captions (the loss input)."""
        return self.embed_audio(audio) @ self.embed_text(captions).t()


def mean_pairwise_cosine(emb: torch.Tensor) -> float:
    """Mean cosine similarity between different rows of L2-normalised ``emb`` (1.0 = all identical)."""
    n = emb.shape[0]
    if n < 2:
        raise ValueError("need at least two embeddings")
    total = emb.sum(0)
    return float(((total @ total) - n) / (n * (n - 1)))  # sum over i != j of e_i . e_j, no [n, n] matrix


@torch.no_grad()
def heldout_similarity(heads: ProjectionHeads, data: ToyRetrievalData) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sim [M*C, M], target [M*C])`` for text-to-audio retrieval over the test items."""
    audio = heads.embed_audio(data.test_audio)
    m, c, f = data.test_captions.shape
    text = heads.embed_text(data.test_captions.reshape(m * c, f))
    return text @ audio.t(), torch.arange(m).repeat_interleave(c)


@torch.no_grad()
def evaluate_toy(heads: ProjectionHeads, data: ToyRetrievalData) -> dict[str, float]:
    """Text-to-audio metrics on the test items (all captions as queries) plus the embedding spread."""
    sim, target = heldout_similarity(heads, data)
    audio = heads.embed_audio(data.test_audio)
    metrics = text_to_audio(sim, target)
    metrics["spread"] = mean_pairwise_cosine(audio)
    return metrics


@contextmanager
def _torch_threads(n: int | None):
    if not n:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class ToyRun:
    loss: str
    batch_size: int
    seed: int
    metrics: dict
    history: list[dict]
    steps: int
    seconds: float
    loss_kwargs: dict = field(default_factory=dict)
    heads: ProjectionHeads | None = field(default=None, repr=False)  # the trained model

    def row(self) -> dict:
        """Flat record for a results table."""
        out = {"loss": self.loss, "batch_size": self.batch_size, "seed": self.seed, "steps": self.steps,
               "final_train_loss": self.history[-1]["train_loss"] if self.history else float("nan"),
               "seconds": self.seconds}
        out.update(self.metrics)
        return out


def train_toy(
    data: ToyRetrievalData,
    loss: str = "nt-xent",
    batch_size: int = 32,
    epochs: int = 20,
    lr: float = 1e-3,
    embed_dim: int = 32,
    seed: int = 0,
    loss_kwargs: dict | None = None,
    eval_every: int = 1,
    threads: int | None = 1,
) -> ToyRun:
    """Train :class:`ProjectionHeads` on the toy data with one loss and batch size.

    Each epoch visits every training item once in a random order, pairing it with one of its captions at
    random (as audio-caption training on Clotho does); the last incomplete batch is dropped so every
    step sees exactly ``batch_size`` pairs. Adam, constant learning rate.

    Args:
        eval_every: evaluate on the test items every this many epochs (history); 0 = only at the end.
        threads: torch threads during training (1 by default: the matrices are tiny, so more threads
            only add overhead; restored afterwards). ``None`` keeps the current setting.
    """
    n = data.train_audio.shape[0]
    if not 1 < batch_size <= n:
        raise ValueError(f"`batch_size` must be in [2, {n}] (the training items), got {batch_size}")
    loss_kwargs = dict(loss_kwargs or {})
    loss_fn = get_loss(loss, **loss_kwargs)
    start = time.perf_counter()
    history: list[dict] = []
    steps = 0
    with _torch_threads(threads):
        torch.manual_seed(seed)  # head initialisation
        gen = torch.Generator().manual_seed(seed + 1)  # batch order and caption choice
        heads = ProjectionHeads(data.feature_dim, data.train_captions.shape[2], embed_dim)
        opt = torch.optim.Adam(heads.parameters(), lr=lr)
        n_captions = data.train_captions.shape[1]
        for epoch in range(1, epochs + 1):
            order = torch.randperm(n, generator=gen)
            which = torch.randint(0, n_captions, (n,), generator=gen)
            losses = []
            for s in range(0, n - batch_size + 1, batch_size):
                idx = order[s : s + batch_size]
                sim = heads(data.train_audio[idx], data.train_captions[idx, which[idx]])
                value = loss_fn(sim)
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
                losses.append(value.detach())
                steps += 1
            record = {"epoch": epoch, "step": steps, "train_loss": float(torch.stack(losses).mean())}
            if (eval_every and epoch % eval_every == 0) or epoch == epochs:
                record.update(evaluate_toy(heads, data))
            history.append(record)
    metrics = {k: v for k, v in history[-1].items() if k not in {"epoch", "step", "train_loss"}}
    return ToyRun(get_loss(loss).name, batch_size, seed, metrics, history, steps,
                  time.perf_counter() - start, loss_kwargs, heads.eval())


PARALLEL_MIN_VISITS = 20_000  # items x epochs per run below which worker start-up (~3 s) outweighs the gain
_WORKER_DATA = None  # the toy data, in a sweep worker process


def _set_worker_data(data) -> None:
    global _WORKER_DATA
    _WORKER_DATA = data


def _train_in_worker(task: tuple):
    loss, batch_size, seed, settings = task
    return train_toy(_WORKER_DATA, loss=loss, batch_size=batch_size, seed=seed, **settings)


def batch_size_sweep(
    data: ToyRetrievalData,
    losses: Sequence[str] = ("triplet-sum", "triplet-max", "triplet-weighted", "nt-xent"),
    batch_sizes: Sequence[int] = (32, 128),
    seeds: Sequence[int] = (0,),
    epochs: int = 20,
    lr: float = 1e-3,
    embed_dim: int = 32,
    eval_every: int = 1,
    keep_models: bool = False,
    progress: bool = True,
    workers: int | None = None,
):
    """Train every (loss, batch size, seed); return ``(table, histories)`` as pandas DataFrames.

    ``table`` has one row per run (metrics in percent, ``spread``, ``steps``, ``seconds``); ``histories``
    one row per run and epoch. With ``keep_models=True`` a third value maps ``(loss, batch_size, seed)``
    to the trained :class:`ProjectionHeads`. ``workers``: processes training runs side by side (None: one
    per core when each run visits at least ``PARALLEL_MIN_VISITS`` items, else this process); every run
    trains on one thread, so the numbers are the same for any number of workers.
    """
    import pandas as pd

    from hybridlib.util.progress import progress_bar as tqdm
    from hybridlib.util.workers import default_workers, spawn_pool

    combos = [(loss, b, s) for b in batch_sizes for loss in losses for s in seeds]
    settings = dict(epochs=epochs, lr=lr, embed_dim=embed_dim, eval_every=eval_every)
    if workers is None:
        big = data.train_audio.shape[0] * epochs >= PARALLEL_MIN_VISITS
        workers = default_workers(len(combos)) if big else 1
    if workers > 1 and len(combos) > 1:
        with spawn_pool(min(workers, len(combos)), initializer=_set_worker_data, initargs=(data,)) as pool:
            done = pool.map(_train_in_worker, [(loss, b, s, settings) for loss, b, s in combos])
            trained = list(tqdm(done, total=len(combos), desc="toy training runs", disable=not progress))
    else:
        trained = [train_toy(data, loss=loss, batch_size=b, seed=s, **settings)
                   for loss, b, s in tqdm(combos, desc="toy training runs", disable=not progress)]
    rows, hist, models = [], [], {}
    for (_, b, s), run in zip(combos, trained):
        rows.append(run.row())
        hist.extend({"loss": run.loss, "batch_size": b, "seed": s, **h} for h in run.history)
        if keep_models:
            models[(run.loss, b, s)] = run.heads
    if keep_models:
        return pd.DataFrame(rows), pd.DataFrame(hist), models
    return pd.DataFrame(rows), pd.DataFrame(hist)

