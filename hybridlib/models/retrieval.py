"""The retrieval model shared by notebooks, CLI, training, evaluation and tests.

One class, :class:`RetrievalModel`, with a ``fusion`` choice (:class:`ModelConfig`):

``"none"``
    content-only baseline: audio frames -> pooling -> item projection; query -> query projection.
``"metadata-only"``
    items are embedded from their metadata text alone (hybrid paper, Fig. 1 left).
``"late"``
    pooled audio + metadata embedding, summed, then projected (hybrid paper, Fig. 2).
``"mid"``
    metadata token appended to the transformer pooling, two gated query embeddings and query-derived
    softmax score weights (hybrid paper, Fig. 3; :class:`hybridlib.models.fusion.MidFusion`).
``"mei"``
    Mei et al.: clip-level max+mean pooling of the frames and two-layer MLP projections on both sides.

Where the projections sit: the hybrid paper projects the *fused* item embedding and the query embedding
into the retrieval space. With a frozen text encoder those projections are the only trainable part of
the query side (an adapter); ``projection="linear"`` (default, the paper) or ``"mlp"``. With
``share_projection=True`` items and queries use one projection (only for ``none``/``late``/
``metadata-only`` with ``d_model == text_dim``), so metadata and queries start in the same space.
All retrieval vectors are L2-normalised: similarities are cosines (``normalize=True``).

Inputs come as a batch dict (see :meth:`RetrievalModel.embed_items` / :meth:`RetrievalModel.embed_queries`):
cached features (``frames``, ``metadata_emb``, ``caption_emb``) for frozen encoders, cached token states of
the frozen lower text layers (``caption_hidden``, ``metadata_hidden`` + ``*_lengths``) when only the top text
layers train (``text_tune_layers``), or raw inputs (``waveform``, ``metadata_text``, ``captions``) that the model
encodes with its own encoders.

Frozen encoders (``ModelConfig.frozen_mode="eval"``, the default) are *not* submodules (they are kept out
of ``state_dict`` and ``parameters()`` so saved models stay small and optimizers never see them); they are
built lazily when raw inputs first need them and always run in eval mode under ``torch.no_grad``, so their
outputs can be cached. This is our choice of what "frozen" means. Mei et al.'s released code freezes only the
weights (``requires_grad=False``) and leaves the encoders in train mode with the rest of the model:
BatchNorm running statistics keep updating, dropout and SpecAugment stay active. ``frozen_mode="train"``
reproduces that: the frozen encoders become submodules with frozen parameters (their BatchNorm buffers are
saved with the model), follow the model's train/eval mode and run on every batch (no cache). Trainable
encoders are submodules; a trainable audio backbone's AudioSet tagging head (PANNs ``fc1``/``fc_audioset``,
EfficientAT ``classifier``), which the frames never pass through, stays frozen: it is neither trained nor counted
as trainable (:func:`hybridlib.models.audio.freeze_tagging_head`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from hybridlib.models.config import USES_AUDIO, USES_METADATA, ModelConfig
from hybridlib.models.fusion import (
    LateFusion,
    MidFusion,
    MissingMetadata,
    effective_weights,
    l2_normalize,
    make_projection,
)
from hybridlib.util.tensors import concat_along_batch, map_tensors, masked_max_mean, pad_sequences


class _TensorFields:
    """Shared behaviour of the embedding dataclasses: length, and mapping a function over tensor fields."""

    def __len__(self) -> int:
        return self.embedding.shape[0]

    def apply(self, fn):
        """A copy with ``fn`` applied to every tensor field (e.g. ``lambda t: t.detach().cpu()``)."""
        return map_tensors(self, fn)

    def detach(self):
        return self.apply(torch.Tensor.detach)

    def to(self, *args, **kwargs):
        return self.apply(lambda t: t.to(*args, **kwargs))


@dataclass
class ItemEmbeddings(_TensorFields):
    """Items in the retrieval space.

    embedding: ``[A, R]`` the item vector (mid fusion: the transformed global audio token, projected).
    metadata: ``[A, R]`` mid fusion only: the transformed metadata token, projected.
    has_metadata: Bool ``[A]`` whether the item came with metadata (None when the fusion ignores metadata).
    metadata_mask: Bool ``[A]`` mid fusion: whether the metadata score takes part (all True with a learned
        stand-in; ``has_metadata`` with ``missing_metadata="audio-only"``).
    clip_index: Long ``[A]`` the batch's ``clip_index`` (to match queries to their items).
    """

    embedding: torch.Tensor
    metadata: torch.Tensor | None = None
    has_metadata: torch.Tensor | None = None
    metadata_mask: torch.Tensor | None = None
    clip_index: torch.Tensor | None = None


@dataclass
class QueryEmbeddings(_TensorFields):
    """Queries in the retrieval space.

    embedding: ``[Q, R]`` the query vector (mid fusion: the audio-query vector of the first gated unit).
    metadata: ``[Q, R]`` mid fusion only: the metadata-query vector of the second gated unit.
    weights: ``[Q, 2]`` mid fusion only: softmax weights (audio, metadata) derived from the query.
    clip_index: Long ``[Q]`` the item each query (caption) belongs to.
    """

    embedding: torch.Tensor
    metadata: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    clip_index: torch.Tensor | None = None


def concat_items(parts: list[ItemEmbeddings]) -> ItemEmbeddings:
    """Concatenate :class:`ItemEmbeddings` computed in chunks (in order)."""
    return concat_along_batch(parts)


def concat_queries(parts: list[QueryEmbeddings]) -> QueryEmbeddings:
    """Concatenate :class:`QueryEmbeddings` computed in chunks (in order)."""
    return concat_along_batch(parts)


def _build_pooling(cfg: ModelConfig) -> nn.Module:
    from hybridlib.models import pooling

    if cfg.pooling == "transformer":
        return pooling.TransformerPooling(cfg.audio_dim, cfg.width, num_layers=cfg.num_layers,
                                          num_heads=cfg.num_heads, dropout=cfg.dropout)
    if cfg.pooling == "mean":
        return pooling.MeanPooling(cfg.audio_dim, cfg.width)
    return pooling.MaxMeanPooling(cfg.audio_dim, cfg.width)


def _set_trainable(module: nn.Module, trainable: bool) -> nn.Module:
    """Freeze or unfreeze an encoder (``TextEncoder.set_trainable`` also switches its no-grad fast path)."""
    if hasattr(module, "set_trainable"):
        module.set_trainable(trainable)
    module.requires_grad_(trainable)
    return module


def _freeze(module: nn.Module) -> nn.Module:
    return _set_trainable(module, False).eval()


class RetrievalModel(nn.Module):
    """Dual-encoder retrieval model with optional audio-metadata fusion (see the module docstring).

    Args:
        cfg: the :class:`ModelConfig`.
        text_encoder: a ``TextEncoder`` to use instead of building ``cfg.text_encoder`` (trainable: it
            becomes a submodule; frozen: it is kept outside the module and used under ``no_grad``). The
            encoder is frozen or unfrozen *in place* to match ``cfg.text_trainable``.
        audio_backbone: likewise for the audio backbone (``cfg.audio_trainable``).
        pooling: a pooling module with the ``TransformerPooling`` call signature to use instead of the
            one built from ``cfg.pooling``.
    """

    def __init__(self, cfg: ModelConfig, text_encoder: nn.Module | None = None,
                 audio_backbone: nn.Module | None = None, pooling: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg.validate()
        self._frozen: dict[str, nn.Module] = {}
        self._setup_encoders(text_encoder, audio_backbone)

        r, dt, width = cfg.retrieval_dim, cfg.text_dim, cfg.width
        self.missing = MissingMetadata(dt, cfg.missing_metadata) if cfg.fusion in USES_METADATA else None
        if cfg.fusion in ("none", "late"):
            self.pooling = pooling if pooling is not None else _build_pooling(cfg)
        if cfg.fusion == "late":
            self.late = LateFusion(width, dt)
        if cfg.fusion == "mid":  # the pooling lives inside MidFusion (registered once)
            self.mid = MidFusion(pooling if pooling is not None else _build_pooling(cfg), dt, width, r,
                                 gate_batch_norm=cfg.gate_batch_norm, normalize=cfg.normalize)
        elif cfg.fusion == "mei":
            self.item_proj = make_projection("mlp", cfg.audio_dim, r, cfg.mlp_hidden_mult)
            self.query_proj = make_projection("mlp", dt, r, cfg.mlp_hidden_mult)
        else:
            item_in = dt if cfg.fusion == "metadata-only" else width
            self.item_proj = make_projection(cfg.projection, item_in, r, cfg.mlp_hidden_mult)
            # a shared projection is registered once (item_proj) so state_dict has no aliased tensors
            self.query_proj = None if cfg.share_projection else make_projection(cfg.projection, dt, r,
                                                                                 cfg.mlp_hidden_mult)

    # ------------------------------------------------------------------ encoders
    def _setup_encoders(self, text_encoder, audio_backbone) -> None:
        cfg = self.cfg
        self.audio_backbone = None
        train_mode_frozen = cfg.frozen_mode == "train"
        if (cfg.audio_trainable or train_mode_frozen) and cfg.fusion != "metadata-only":
            if audio_backbone is None:
                audio_backbone = self._build_audio_backbone()
            # a submodule: trained, or frozen weights in train mode (Mei et al.'s "frozen"); its AudioSet tagging
            # head never sees the frames the model reads, so it is frozen (neither trained nor counted)
            from hybridlib.models.audio import freeze_tagging_head

            self.audio_backbone = freeze_tagging_head(_set_trainable(audio_backbone, cfg.audio_trainable))
        elif audio_backbone is not None:
            self._frozen["audio"] = _freeze(audio_backbone)
        if self.audio_backbone is not None or "audio" in self._frozen:
            backbone = self.audio_backbone or self._frozen["audio"]
            dim = getattr(backbone, "embed_dim", cfg.audio_dim)
            if dim != cfg.audio_dim:
                raise ValueError(f"ModelConfig.audio_dim={cfg.audio_dim} but the audio backbone "
                                 f"{getattr(backbone, 'name', type(backbone).__name__)!r} has embed_dim={dim}")

        self.text_encoder = None
        self.metadata_text_encoder = None
        self.text_top = None
        self.metadata_text_top = None
        if text_encoder is not None:
            dim = getattr(text_encoder, "embed_dim", cfg.text_dim)
            if dim != cfg.text_dim:
                raise ValueError(f"ModelConfig.text_dim={cfg.text_dim} but the text encoder has embed_dim={dim}")
        if cfg.text_tune_layers:
            from hybridlib.models.text import TopLayers

            # the frozen encoder runs the lower layers for strings; a trainable copy of its top layers continues
            base = _freeze(text_encoder if text_encoder is not None else self._build_text_encoder(trainable=False))
            self._frozen["text"] = base
            self.text_top = TopLayers.from_encoder(base, cfg.text_tune_layers)
            if not cfg.share_text_encoder and cfg.fusion in USES_METADATA:
                self.metadata_text_top = copy.deepcopy(self.text_top)
        elif cfg.text_trainable or train_mode_frozen:
            if text_encoder is None:
                text_encoder = self._build_text_encoder(trainable=cfg.text_trainable)
            self.text_encoder = _set_trainable(text_encoder, cfg.text_trainable)
            if not cfg.text_trainable and hasattr(text_encoder, "train_when_frozen"):
                text_encoder.train_when_frozen = True
            if not cfg.share_text_encoder and cfg.fusion in USES_METADATA:
                self.metadata_text_encoder = copy.deepcopy(text_encoder)
        elif text_encoder is not None:
            self._frozen["text"] = _freeze(text_encoder)

    def _build_audio_backbone(self) -> nn.Module:
        from hybridlib.models.audio import build_audio_backbone

        return build_audio_backbone(self.cfg.audio_backbone, checkpoint=self.cfg.audio_checkpoint)

    def _build_text_encoder(self, trainable: bool) -> nn.Module:
        from hybridlib.models.text import build_text_encoder

        cfg = self.cfg
        encoder = build_text_encoder(cfg.text_encoder, max_tokens=cfg.text_max_tokens, pooling=cfg.text_pooling,
                                     trainable=trainable, text_mode=cfg.text_mode, dropout=cfg.text_dropout,
                                     train_when_frozen=not trainable and cfg.frozen_mode == "train")
        dim = getattr(encoder, "embed_dim", cfg.text_dim)
        if dim != cfg.text_dim:
            raise ValueError(f"ModelConfig.text_dim={cfg.text_dim} but text encoder {cfg.text_encoder!r} "
                             f"has embed_dim={dim}")
        return encoder

    def encoder_modules(self) -> dict[str, nn.Module | None]:
        """``{"audio", "text", "metadata_text"}``: the encoders in use (submodules, or the frozen ones outside
        the module once built; None when absent or not built yet). Read by the ingredient report."""
        return {"audio": self.audio_backbone or self._frozen.get("audio"),
                "text": self.text_encoder or self._frozen.get("text"),
                "metadata_text": self.metadata_text_encoder}

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def _frozen_module(self, key: str) -> nn.Module:
        if key not in self._frozen:
            if key == "text":
                self._frozen[key] = _freeze(self._build_text_encoder(trainable=False))
            else:
                self._frozen[key] = _freeze(self._build_audio_backbone())
        return self._frozen[key].to(self.device)

    def _top_layers(self, role: str) -> nn.Module:
        return self.metadata_text_top if role == "metadata" and self.metadata_text_top is not None else self.text_top

    def _encode_text(self, texts: list[str], role: str) -> torch.Tensor:
        if self.text_top is not None:
            frozen = self._frozen_module("text")
            with torch.no_grad():  # the frozen lower layers, batch-invariant like the cached states
                rows = frozen.hidden_states_batch_invariant(texts, frozen.num_layers - self.cfg.text_tune_layers)
            hidden, lengths = pad_sequences(rows)
            return self._top_layers(role)(hidden.to(self.device), lengths.to(self.device))
        if self.text_encoder is not None:
            encoder = self.metadata_text_encoder if role == "metadata" and self.metadata_text_encoder else \
                self.text_encoder
            return encoder(texts)
        with torch.no_grad():
            return self._frozen_module("text")(texts)

    # ------------------------------------------------------------------ batch inputs
    def _audio_inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(frames [B, T, Da], frame_lengths [B] | None)`` from cached frames or by running the backbone."""
        if "frames" in batch:
            frames, lengths = batch["frames"], batch.get("frame_lengths")
        elif "waveform" in batch:
            waveform, lengths = batch["waveform"], batch.get("lengths")
            if self.audio_backbone is not None:
                with torch.set_grad_enabled(torch.is_grad_enabled() and self.cfg.audio_trainable):
                    frames, lengths = self.audio_backbone(waveform, lengths)
            else:
                with torch.no_grad():
                    frames, lengths = self._frozen_module("audio")(waveform, lengths)
        else:
            raise KeyError(f"fusion={self.cfg.fusion!r} needs audio: the batch must hold 'frames' (+ "
                           "'frame_lengths') or 'waveform' (+ 'lengths'); it has " + str(sorted(batch)))
        if frames.dim() != 3 or frames.shape[-1] != self.cfg.audio_dim:
            raise ValueError(f"batch['frames'] must have shape [B, T, {self.cfg.audio_dim}] "
                             f"(ModelConfig.audio_dim), got {tuple(frames.shape)}")
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=frames.device)
        return frames, lengths

    def _metadata_inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``(metadata_emb [B, Dt], has_metadata Bool[B])``; rows without metadata are zeros."""
        if "metadata_emb" in batch:
            emb = batch["metadata_emb"]
            has = batch.get("has_metadata")
            if has is None:
                has = torch.ones(emb.shape[0], dtype=torch.bool, device=emb.device)
            has = torch.as_tensor(has, dtype=torch.bool, device=emb.device)
        elif "metadata_hidden" in batch:
            if self.text_top is None:
                raise KeyError("batch['metadata_hidden'] holds cached text states, but this model has "
                               "text_tune_layers=0: prepare the data for its config")
            has = torch.as_tensor(batch["has_metadata"], dtype=torch.bool, device=self.device)
            emb = torch.zeros(len(has), self.cfg.text_dim, device=self.device)
            if bool(has.any()):
                lengths = torch.as_tensor(batch["metadata_hidden_lengths"], device=self.device)
                encoded = self._top_layers("metadata")(batch["metadata_hidden"][has], lengths[has])
                emb = emb.to(encoded.dtype).index_put((has,), encoded)
        elif "metadata_text" in batch:
            texts = list(batch["metadata_text"])
            has_list = [t is not None and str(t).strip() != "" for t in texts]
            has = torch.tensor(has_list, dtype=torch.bool, device=self.device)
            emb = torch.zeros(len(texts), self.cfg.text_dim, device=self.device)
            if any(has_list):
                encoded = self._encode_text([t for t, h in zip(texts, has_list) if h], role="metadata")
                emb = emb.to(encoded.dtype).index_put((has,), encoded)
        else:
            raise KeyError(f"fusion={self.cfg.fusion!r} needs metadata: the batch must hold 'metadata_emb' "
                           "(+ 'has_metadata') or 'metadata_text'; it has " + str(sorted(batch)))
        if emb.dim() != 2 or emb.shape[-1] != self.cfg.text_dim:
            raise ValueError(f"batch['metadata_emb'] must have shape [B, {self.cfg.text_dim}] "
                             f"(ModelConfig.text_dim), got {tuple(emb.shape)}")
        if has.shape != (emb.shape[0],):
            raise ValueError(f"batch['has_metadata'] must have shape [{emb.shape[0]}], got {tuple(has.shape)}")
        return emb, has

    def _query_inputs(self, batch: dict) -> torch.Tensor:
        if "caption_emb" in batch:
            emb = batch["caption_emb"]
        elif "caption_hidden" in batch:
            if self.text_top is None:
                raise KeyError("batch['caption_hidden'] holds cached text states, but this model has "
                               "text_tune_layers=0: prepare the data for its config")
            emb = self._top_layers("query")(batch["caption_hidden"], batch.get("caption_hidden_lengths"))
        elif "captions" in batch:
            captions = list(batch["captions"])
            if not all(isinstance(c, str) for c in captions):
                raise TypeError("batch['captions'] must be a list of strings")
            emb = self._encode_text(captions, role="query")
        else:
            raise KeyError("queries need 'caption_emb' or 'captions' in the batch; it has " + str(sorted(batch)))
        if emb.dim() != 2 or emb.shape[-1] != self.cfg.text_dim:
            raise ValueError(f"batch['caption_emb'] must have shape [Q, {self.cfg.text_dim}] "
                             f"(ModelConfig.text_dim), got {tuple(emb.shape)}")
        return emb

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return l2_normalize(x) if self.cfg.normalize else x

    # ------------------------------------------------------------------ public API
    def embed_items(self, batch: dict, return_stages: bool = False):
        """Embed the batch's items. Returns :class:`ItemEmbeddings` (and a dict of intermediate tensors
        ``stages`` with ``return_stages=True``, for teaching: frames, pooled audio, fused vector, ...)."""
        cfg = self.cfg
        stages: dict[str, torch.Tensor] = {}
        clip_index = batch.get("clip_index")
        has = meta_vec = mask = None
        if cfg.fusion in USES_AUDIO:
            frames, lengths = self._audio_inputs(batch)
            stages["frames"] = frames
        if cfg.fusion in USES_METADATA:
            meta, has = self._metadata_inputs(batch)
            filled, present = self.missing(meta, has)
            stages["metadata"] = filled
        if cfg.fusion == "none":
            pooled = self.pooling(frames, lengths).pooled
            stages["audio"] = pooled
            emb = self._norm(self.item_proj(pooled))
        elif cfg.fusion == "metadata-only":
            emb = self._norm(self.item_proj(filled))
        elif cfg.fusion == "late":
            pooled = self.pooling(frames, lengths).pooled
            fused = self.late(pooled, filled, present)
            stages.update(audio=pooled, fused=fused)
            emb = self._norm(self.item_proj(fused))
        elif cfg.fusion == "mid":
            emb, meta_vec, out = self.mid.embed_items(frames, lengths, filled, present)
            stages.update(audio=out.pooled, metadata_token=out.extra[:, 0])
            mask = present
        else:  # mei
            pooled = masked_max_mean(frames, lengths)
            stages["audio"] = pooled
            emb = self._norm(self.item_proj(pooled))
        stages["item"] = emb
        items = ItemEmbeddings(emb, meta_vec, has, mask,
                               None if clip_index is None else torch.as_tensor(clip_index))
        return (items, stages) if return_stages else items

    def embed_queries(self, batch: dict) -> QueryEmbeddings:
        """Embed the batch's queries (``caption_emb`` or ``captions``) into the retrieval space."""
        query = self._query_inputs(batch)
        clip_index = batch.get("clip_index")
        clip_index = None if clip_index is None else torch.as_tensor(clip_index)
        if self.cfg.fusion == "mid":
            audio_q, meta_q, weights = self.mid.embed_queries(query)
            return QueryEmbeddings(audio_q, meta_q, weights, clip_index)
        projection = self.item_proj if self.query_proj is None else self.query_proj
        return QueryEmbeddings(self._norm(projection(query)), clip_index=clip_index)

    def similarity(self, queries: QueryEmbeddings, items: ItemEmbeddings) -> torch.Tensor:
        """Scores ``[Q, A]`` (cosine similarities; mid fusion: the query-weighted mix of two cosines)."""
        if self.cfg.fusion != "mid":
            return queries.embedding @ items.embedding.T
        if queries.metadata is None or queries.weights is None or items.metadata is None:
            raise ValueError("mid fusion needs QueryEmbeddings/ItemEmbeddings from a mid-fusion model")
        return MidFusion.score(queries.embedding, queries.metadata, queries.weights, items.embedding,
                               items.metadata, items.metadata_mask)

    def text_encoder_parameters(self) -> list[nn.Parameter]:
        """The trainable text-encoder parameters (every layer with ``text_trainable``, the top layers with
        ``text_tune_layers``; both copies when not shared): the optimiser gives them ``TrainConfig.text_lr``."""
        modules = (self.text_encoder, self.metadata_text_encoder, self.text_top, self.metadata_text_top)
        return [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]

    def item_parts(self, batch: dict) -> dict[str, torch.Tensor] | None:
        """Late fusion with a linear item projection: the item vector split exactly into what the audio, the
        metadata and the projection's bias contribute (``{"audio", "metadata", "bias"}``, each ``[B, R]``).

        The fused vector is ``a + m`` (pooled audio plus the metadata term of :class:`LateFusion`) and the
        projection is affine, ``P(a + m) = W a + W m + b``; the item vector divides that by its norm ``n``, so
        ``W a / n + W m / n + b / n`` is the item vector and a query's cosine splits into three additive
        parts. An MLP projection (or any other fusion) has no such split: None.
        """
        if self.cfg.fusion != "late" or not isinstance(self.item_proj, nn.Linear):
            return None
        _, stages = self.embed_items(batch, return_stages=True)
        audio, fused = stages["audio"], stages["fused"]
        weight, bias = self.item_proj.weight, self.item_proj.bias
        raw = self.item_proj(fused)
        norm = raw.norm(dim=-1, keepdim=True).clamp(min=1e-12) if self.cfg.normalize else torch.ones_like(raw[:, :1])
        bias_part = (bias if bias is not None else torch.zeros_like(raw[0])).expand_as(raw)
        return {"audio": audio @ weight.T / norm, "metadata": (fused - audio) @ weight.T / norm,
                "bias": bias_part / norm}

    def score_weights(self, queries: QueryEmbeddings, items: ItemEmbeddings) -> torch.Tensor:
        """Mid fusion: the effective (audio, metadata) weights ``[Q, A, 2]`` used for each query-item pair."""
        if self.cfg.fusion != "mid":
            raise ValueError(f"score weights exist only for fusion='mid', not {self.cfg.fusion!r}")
        available = None
        if items.metadata_mask is not None:
            mask = items.metadata_mask.to(torch.bool)
            available = torch.stack([torch.ones_like(mask), mask], dim=-1)
        return effective_weights(queries.weights, available, len(items))

    def forward(self, batch: dict) -> torch.Tensor:
        """Similarity matrix ``[B, B]`` of the batch: rows items (audios), columns captions (the loss input)."""
        return self.similarity(self.embed_queries(batch), self.embed_items(batch)).T

    def extra_repr(self) -> str:
        return f"fusion={self.cfg.fusion!r}, retrieval_dim={self.cfg.retrieval_dim}"
