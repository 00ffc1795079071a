"""The retrieval model's configuration (:class:`ModelConfig`) and the choices it validates against.

Plain data with no torch import, so configs can be read, validated and compared without building a model
(the training config embeds one as its ``model`` section).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from hybridlib.util.text import TEXT_MODES
from hybridlib.util.values import describe_value, value_problem

FUSIONS = ("none", "metadata-only", "late", "mid", "mei")
METADATA_KINDS = ("os", "cs", "fs")
POOLINGS = ("transformer", "mean", "max-mean")
MISSING_METADATA_MODES = ("learned", "audio-only")
PROJECTIONS = ("linear", "mlp")
USES_AUDIO = ("none", "late", "mid", "mei")
USES_METADATA = ("metadata-only", "late", "mid")
FROZEN_MODES = ("eval", "train")


@dataclass
class ModelConfig:
    """Everything that defines a :class:`RetrievalModel` (saved next to its weights as JSON).

    fusion: ``none`` | ``metadata-only`` | ``late`` | ``mid`` | ``mei`` (see the module docstring).
    metadata_kind: which metadata the data pipeline feeds (``os`` keywords, ``cs`` tags, ``fs`` sentences);
        the architecture is the same for all three.
    audio_backbone, audio_dim: backbone name for :func:`hybridlib.models.audio.build_audio_backbone` and
        its frame width (sfx-cnn: 512; PANNs Cnn14/ResNet38: 2048; EfficientAT mn40: 3840).
    audio_checkpoint: an official-format weights file for the backbone (see
        :mod:`hybridlib.models.audio.checkpoints`); None: the published pretrained file at
        :func:`hybridlib.models.audio.weights.weights_path` (downloaded when missing). The rehearsal points
        it at random-initialised stand-ins.
    audio_trainable: the model owns (and fine-tunes) the backbone and accepts ``waveform`` batches.
    text_encoder, text_dim, text_max_tokens, text_pooling, text_mode: arguments of
        :func:`hybridlib.models.text.build_text_encoder` (minilm: 384-d; bert-base: 768-d; a local model
        folder works too). ``text_max_tokens=None``: no truncation below the model's own limit (512 for BERT;
        Mei et al.'s code does not truncate); ``text_mode``: the caption preprocessing of
        :func:`hybridlib.util.text.normalize_text` (``hybrid``: the hybrid paper's; ``mei``: Mei et al.'s).
    text_dropout: dropout of the text transformer (hidden and attention probabilities); None keeps the
        model's own configuration (0.1 for BERT); Mei et al. set 0.2.
    text_trainable: the model owns (and fine-tunes) the text encoder and accepts strings.
    text_tune_layers: fine-tune only the top ``k`` transformer layers of the text encoder (0: frozen). The frozen
        layers below run once per text and their token states are cached (``features.cache``); the model owns
        a trainable copy of the pretrained top layers (:class:`hybridlib.models.text.TopLayers`). A CPU way to
        train text layers; exclusive with ``text_trainable`` (which fine-tunes every layer on strings).
    frozen_mode: what "frozen" means for an encoder that is not trainable. ``eval`` (default, our choice):
        the encoder runs in eval mode (no dropout, BatchNorm running statistics fixed, no SpecAugment), so
        its outputs never change and are computed once and cached (:mod:`hybridlib.features.cache`).
        ``train``: as in Mei et al.'s released code, the weights are frozen but the encoder stays in train
        mode with the rest of the model (BatchNorm statistics update, dropout and SpecAugment active), so it
        runs on every batch (waveforms and strings, nothing cached) and its BatchNorm buffers are part of the
        saved model.
    share_text_encoder: one text encoder for queries and metadata (hybrid paper, section V-E); False gives
        metadata its own copy (with ``text_tune_layers``: its own copy of the trainable top layers, both
        starting from the same pretrained weights). With frozen encoders both choices compute the same
        embeddings.
    pooling: ``transformer`` (hybrid paper) | ``mean`` | ``max-mean`` (``mid`` needs ``transformer``;
        ``mei`` always uses its own clip-level max+mean pooling of the frames without a projection).
    d_model: pooling width (None -> ``text_dim``, so late fusion sums audio and metadata directly).
    num_layers, num_heads, dropout: transformer pooling.
    retrieval_dim: width of the retrieval space (the hybrid paper does not state it; 256 here, Mei et al.
        use 1024).
    missing_metadata: ``learned`` (a learned embedding stands in) | ``audio-only`` (fall back to audio).
    projection: ``linear`` | ``mlp`` for the item/query projections of none/late/metadata-only
        (``mei`` always uses Mei et al.'s MLP; ``mid`` uses linear projections and gated units).
    mlp_hidden_mult: hidden width of MLP projections as a multiple of ``retrieval_dim`` (Mei et al.: 2).
    share_projection: items and queries share one projection (see the module docstring).
    gate_batch_norm: batch norm inside the gated embedding units' context gating (Miech et al.'s option).
    normalize: L2-normalise retrieval vectors (cosine similarity, both papers); False gives raw dot products
        (for experiments only: the losses' margins and temperatures assume cosines).
    """

    fusion: str = "none"
    metadata_kind: str = "os"
    audio_backbone: str = "sfx-cnn"
    audio_dim: int = 512
    audio_checkpoint: str | None = None
    audio_trainable: bool = False
    text_encoder: str = "minilm"
    text_dim: int = 384
    text_max_tokens: int | None = 32
    text_pooling: str = "cls"
    text_mode: str = "hybrid"
    text_dropout: float | None = None
    text_trainable: bool = False
    text_tune_layers: int = 0
    frozen_mode: str = "eval"
    share_text_encoder: bool = True
    pooling: str = "transformer"
    d_model: int | None = None
    num_layers: int = 2
    num_heads: int = 4
    dropout: float = 0.1
    retrieval_dim: int = 256
    missing_metadata: str = "learned"
    projection: str = "linear"
    mlp_hidden_mult: int = 2
    share_projection: bool = False
    gate_batch_norm: bool = False
    normalize: bool = True

    @property
    def width(self) -> int:
        """The pooling width (``d_model``, defaulting to ``text_dim``)."""
        return self.d_model or self.text_dim

    @property
    def uses_audio(self) -> bool:
        return self.fusion in USES_AUDIO

    @property
    def audio_cached(self) -> bool:
        """Audio frames come from the feature cache (a frozen backbone in eval mode)."""
        return not self.audio_trainable and self.frozen_mode == "eval"

    @property
    def text_cached(self) -> bool:
        """Caption and metadata embeddings come from the feature cache (a frozen text encoder in eval mode)."""
        return not self.text_trainable and self.frozen_mode == "eval"

    def validate(self) -> ModelConfig:
        """Raise ``ValueError`` naming the offending field; return self."""
        choices = {"fusion": FUSIONS, "metadata_kind": METADATA_KINDS, "pooling": POOLINGS,
                   "missing_metadata": MISSING_METADATA_MODES, "projection": PROJECTIONS,
                   "text_mode": TEXT_MODES, "frozen_mode": FROZEN_MODES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"ModelConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("audio_dim", "text_dim", "retrieval_dim", "num_layers", "num_heads", "mlp_hidden_mult",
                     "d_model"):
            problem = value_problem(getattr(self, name), "int", minimum=1, allow_none=name == "d_model")
            if problem:
                raise ValueError(f"ModelConfig.{name} {problem}, got {describe_value(getattr(self, name))}")
        # None: no truncation (Mei et al.'s tokenizer call); else room for at least [CLS] and [SEP]
        problem = value_problem(self.text_max_tokens, "int", minimum=2, allow_none=True)
        if problem:
            raise ValueError(f"ModelConfig.text_max_tokens {problem}, got {describe_value(self.text_max_tokens)}")
        for name in ("audio_trainable", "text_trainable", "share_text_encoder", "share_projection",
                     "gate_batch_norm", "normalize"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ModelConfig.{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("dropout", "text_dropout"):
            value = getattr(self, name)
            problem = value_problem(value, "number", minimum=0, maximum=1, allow_none=name == "text_dropout")
            if problem or value == 1:
                raise ValueError(f"ModelConfig.{name} must be a number in [0, 1)"
                                 f"{' or null' if name == 'text_dropout' else ''}, got {describe_value(value)}")
        problem = value_problem(self.audio_checkpoint, "str", allow_none=True)
        if problem:
            raise ValueError(f"ModelConfig.audio_checkpoint {problem} (a weights file), got "
                             f"{describe_value(self.audio_checkpoint)}")
        problem = value_problem(self.text_tune_layers, "int", minimum=0)
        if problem:
            raise ValueError(f"ModelConfig.text_tune_layers {problem}, got {describe_value(self.text_tune_layers)}")
        if self.text_tune_layers and self.text_trainable:
            raise ValueError("ModelConfig.text_tune_layers fine-tunes the top layers on cached states and "
                             "text_trainable every layer on strings: set one of them")
        if self.text_tune_layers and self.frozen_mode == "train":
            raise ValueError("ModelConfig.text_tune_layers caches the frozen lower text layers, frozen_mode 'train' "
                             "runs them on every batch: set one of them")
        if self.fusion == "mid" and self.pooling != "transformer":
            raise ValueError("ModelConfig.pooling must be 'transformer' for fusion='mid' (the metadata token "
                             f"is processed by the transformer layers), got {self.pooling!r}")
        if self.pooling == "transformer" and self.fusion != "mei" and self.width % self.num_heads:
            raise ValueError(f"ModelConfig.d_model ({self.width}) must be divisible by num_heads "
                             f"({self.num_heads})")
        if self.fusion == "metadata-only" and self.missing_metadata == "audio-only":
            raise ValueError("ModelConfig.missing_metadata='audio-only' is impossible for fusion='metadata-only' "
                             "(there is no audio to fall back on); use 'learned'")
        if self.share_projection:
            if self.fusion in ("mid", "mei"):
                raise ValueError(f"ModelConfig.share_projection is not available for fusion={self.fusion!r}")
            if self.fusion != "metadata-only" and self.width != self.text_dim:
                raise ValueError("ModelConfig.share_projection needs d_model == text_dim "
                                 f"({self.width} != {self.text_dim})")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        """Build from a dict (e.g. a saved JSON config); unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**values).validate()
