"""Shared test helpers for training and evaluation: a synthetic encoded split and a tiny stand-in model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hybridlib.config import TrainConfig
from hybridlib.features.prepare import TrainingData
from hybridlib.features.splits import EncodedSplit

# ------------------------------------------------------------------------------------------------ fixtures
DA, DT = 8, 6


def synthetic_split(name: str, n_clips: int, caps: int = 3, seed: int = 0, meta_rate: float = 0.8) -> EncodedSplit:
    """Clips with a latent code; frames and captions are noisy linear views of it (so training can learn)."""
    maps = torch.Generator().manual_seed(123)  # the same views in every split
    wa, wt = torch.randn(4, DA, generator=maps), torch.randn(4, DT, generator=maps)
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(n_clips, 4, generator=g)
    frames = []
    for i in range(n_clips):
        t = int(torch.randint(3, 7, (1,), generator=g))
        frames.append(latent[i] @ wa + 0.8 * torch.randn(t, DA, generator=g))
    caption_clip = torch.arange(n_clips).repeat_interleave(caps)
    caption_emb = latent[caption_clip] @ wt + 0.8 * torch.randn(len(caption_clip), DT, generator=g)
    has = torch.rand(n_clips, generator=g) < meta_rate
    meta = (latent @ wt + 0.3 * torch.randn(n_clips, DT, generator=g)) * has[:, None]
    return EncodedSplit(
        name=name, clip_ids=[f"c{i}" for i in range(n_clips)], captions=[f"cap {i}" for i in range(len(caption_clip))],
        caption_clip=caption_clip, metadata_text=["kw" if h else None for h in has.tolist()], has_metadata=has,
        frames=frames, metadata_emb=meta, caption_emb=caption_emb)


@dataclass
class TinyEmb:
    embedding: torch.Tensor
    clip_index: torch.Tensor | None = None


class TinyModel(nn.Module):
    """Stand-in with the RetrievalModel interface (dropout exercises the RNG state on resume)."""

    def __init__(self, r: int = 5, dropout: float = 0.2):
        super().__init__()
        self.audio = nn.Sequential(nn.Linear(DA, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, r))
        self.text = nn.Linear(DT, r)

    def embed_items(self, batch):
        frames, lengths = batch["frames"], batch["frame_lengths"]
        mask = torch.arange(frames.shape[1])[None, :] < lengths[:, None]
        pooled = (frames * mask[..., None]).sum(1) / lengths[:, None]
        return TinyEmb(nn.functional.normalize(self.audio(pooled), dim=-1), batch["clip_index"])

    def embed_queries(self, batch):
        return TinyEmb(nn.functional.normalize(self.text(batch["caption_emb"]), dim=-1), batch["clip_index"])

    def similarity(self, queries, items):
        return queries.embedding @ items.embedding.T

    def forward(self, batch):
        return self.similarity(self.embed_queries(batch), self.embed_items(batch)).T


def tiny_training_data(cfg: TrainConfig | None = None) -> TrainingData:
    """Synthetic splits, fingerprinted for ``cfg`` (default :func:`tiny_cfg`) so training accepts them."""
    from hybridlib.features.prepare import data_fingerprint

    return TrainingData(synthetic_split("development", 40, seed=1), synthetic_split("validation", 16, seed=2),
                        synthetic_split("evaluation", 16, seed=3), fingerprint=data_fingerprint(cfg or tiny_cfg()))


def tiny_cfg(**kw):
    base = dict(name="tiny", epochs=4, batch_size=8, lr=3e-3, lr_min=1e-5, tensorboard=False, seeds=[0],
                eval_batch_size=7, device="cpu")
    base.update(kw)
    return TrainConfig.from_dict(base)
