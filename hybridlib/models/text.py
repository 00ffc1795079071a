"""Text encoders for queries (captions) and metadata: BERT-style transformers from ``transformers``.

Preprocessing follows the hybrid paper (Primus & Widmer): lowercase and punctuation removed by the
project's one text normaliser (:func:`hybridlib.util.text.normalize_text`, the same rule as for metadata),
WordPiece, pad to the longest text in the batch, truncate at 32 tokens; the transformed ``[CLS]`` token is
the text embedding (``pooling="mean"`` averages the non-padding tokens instead).

:meth:`TextEncoder.embed_batch_invariant` encodes every text in the same tensor shapes (grouped by token count,
fixed-size chunks, no padding), so a text's embedding does not depend on which other texts share its batch
(padding or another batch size moves results by about 1e-6); the feature cache uses it.

``build_text_encoder("minilm")`` loads the bundled MiniLM-L6 (384-d, runs offline); any other name or
path goes to ``transformers`` (e.g. ``bert-base-uncased`` as in the paper, ``bert-large-uncased``).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from hybridlib.util.errors import UserError, one_line
from hybridlib.util.tensors import length_mask, masked_mean
from hybridlib.util.text import TEXT_MODES, normalize_text


class TextModelError(UserError, OSError):
    """A text model cannot be loaded (absent offline, damaged, or holding objects that are not plain data);
    the message names the model and its weight files. Weights are read by ``transformers`` with
    ``weights_only=True`` (safetensors preferred), so a pickle that would run code is refused, never run."""


class TextEncoder(nn.Module):
    """A transformer text encoder: ``forward(texts: list[str]) -> [B, embed_dim]``.

    ``trainable=False`` freezes the weights, keeps the transformer in eval mode (no dropout) even when
    the parent model trains, and runs it without building a graph. ``train_when_frozen=True`` keeps a
    frozen transformer in the parent's mode instead (dropout active while training: "frozen" as in Mei et
    al.'s code, ``ModelConfig.frozen_mode="train"``).

    ``max_tokens=None`` truncates only at the model's own limit (``max_position_embeddings``).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        name: str,
        max_tokens: int | None = 32,
        pooling: str = "cls",
        trainable: bool = False,
        text_mode: str = "hybrid",
        train_when_frozen: bool = False,
    ):
        super().__init__()
        if pooling not in {"cls", "mean"}:
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        if text_mode not in TEXT_MODES:
            raise ValueError(f"text_mode must be one of {TEXT_MODES}, got {text_mode!r}")
        if max_tokens is not None and max_tokens < 2:
            raise ValueError(f"max_tokens must be >= 2 ([CLS] and [SEP]) or None, got {max_tokens}")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_tokens = max_tokens
        self.max_length = max_tokens or int(getattr(model.config, "max_position_embeddings", 512))
        self.pooling = pooling
        self.text_mode = text_mode
        self.embed_dim = int(model.config.hidden_size)
        self.train_when_frozen = bool(train_when_frozen)
        self.trainable = trainable
        self.set_trainable(trainable)

    def set_trainable(self, trainable: bool) -> TextEncoder:
        self.trainable = bool(trainable)
        for p in self.model.parameters():
            p.requires_grad_(self.trainable)
        self.train(self.training)
        return self

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if not self.trainable and not self.train_when_frozen:
            self.model.eval()
        return self

    def config(self) -> dict:
        return {"name": self.name, "max_tokens": self.max_tokens, "pooling": self.pooling,
                "text_mode": self.text_mode}

    def preprocess(self, text: str) -> str:
        return normalize_text(text, self.text_mode)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Preprocess and WordPiece-tokenize; pad to the longest, truncate at ``max_tokens``."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        clean = [self.preprocess(t) for t in texts]
        return self.tokenizer(
            clean, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens of each text after preprocessing and truncation (``[CLS]`` and ``[SEP]`` included)."""
        ids = self.tokenizer([self.preprocess(t) for t in texts], truncation=True, max_length=self.max_length)
        return [len(x) for x in ids["input_ids"]]

    def _grouped(self, texts: list[str], fn, chunk: int) -> list[torch.Tensor]:
        """``fn`` over ``texts`` so that every text is computed in the same tensor shapes whatever else is
        encoded with it: texts are grouped by token count and passed in chunks of exactly ``chunk`` texts of that
        length (a short last chunk is filled up with copies of its last text), never padded. Returns one row of
        ``fn``'s output per text, in input order."""
        groups: dict[int, list[int]] = defaultdict(list)
        for i, n in enumerate(self.token_counts(texts)):
            groups[n].append(i)
        out: list[torch.Tensor | None] = [None] * len(texts)
        for n in sorted(groups):
            idx = groups[n]
            for s in range(0, len(idx), chunk):
                rows = idx[s:s + chunk]
                batch = [texts[i] for i in rows]
                result = fn(batch + [batch[-1]] * (chunk - len(batch)))
                for j, i in enumerate(rows):
                    out[i] = result[j]
        return out  # type: ignore[return-value]

    def embed_batch_invariant(self, texts: list[str], chunk: int = 16) -> torch.Tensor:
        """``forward`` over ``texts`` (in input order) so that each text's embedding is the same bytes whatever
        other texts are encoded with it (grouped by token count, fixed-size chunks, no padding: padding, or a
        different batch size, moves results by about 1e-6)."""
        rows = self._grouped(texts, self.forward, chunk)
        return torch.stack(rows) if rows else self.forward([])

    # ------------------------------------------------------------------ lower layers (text_tune_layers)
    @property
    def num_layers(self) -> int:
        """Transformer layers of the model (MiniLM-L6: 6, bert-base: 12)."""
        return len(transformer_layers(self.model))

    def hidden_states(self, texts: list[str], layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hidden [B, L, D], lengths [B])``: the token states after the first ``layer`` transformer layers
        (0: the embedding layer's output), frozen (eval mode, no graph), padded to the longest text."""
        if not 0 <= layer <= self.num_layers:
            raise ValueError(f"layer must be in [0, {self.num_layers}], got {layer}")
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in self.tokenize(texts).items()}
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                hidden = self.model(**batch, output_hidden_states=True).hidden_states[layer]
        finally:
            self.model.train(was_training)
        return hidden, batch["attention_mask"].sum(dim=1)

    def hidden_states_batch_invariant(self, texts: list[str], layer: int, chunk: int = 16) -> list[torch.Tensor]:
        """:meth:`hidden_states` per text, ``[L_i, D]`` each (no padding), computed batch-invariantly like
        :meth:`embed_batch_invariant`, so cached states are the same bytes whoever fills the cache."""
        return [row.clone() for row in self._grouped(texts, lambda b: self.hidden_states(b, layer)[0], chunk)]

    def forward(self, texts: list[str]) -> torch.Tensor:
        if len(texts) == 0:
            device = next(self.model.parameters()).device
            return torch.zeros(0, self.embed_dim, device=device)
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in self.tokenize(texts).items()}
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            hidden = self.model(**batch).last_hidden_state  # [B, L, D]
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def transformer_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer layers of a BERT-style ``transformers`` model (``model.encoder.layer``)."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not len(layers):
        raise ValueError(f"{type(model).__name__} is not a BERT-style encoder (no encoder.layer): its top layers "
                         "cannot be fine-tuned separately (text_tune_layers)")
    return layers


def bert_layer(layer: nn.Module, hidden: torch.Tensor, mask: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
    """One BERT encoder layer (``transformers``' ``BertLayer`` weights, its post-norm computation) on
    ``hidden [B, L, D]`` with the valid-token ``mask [B, L]``.

    ``cls_only``: compute the output of the first token only (``[B, 1, D]``): keys and values still come from
    every token, but queries, the attention output and the feed-forward block run for one position - the same
    numbers as the full layer's first row at a fraction of the cost (the top layer's other rows are unused
    when the [CLS] state is the text embedding). Dropout acts as in ``transformers`` (train mode only).
    """
    sa = layer.attention.self
    b, length, _ = hidden.shape
    heads, size = sa.num_attention_heads, sa.attention_head_size
    q_in = hidden[:, :1] if cls_only else hidden
    q = sa.query(q_in).view(b, q_in.shape[1], heads, size).transpose(1, 2)
    k = sa.key(hidden).view(b, length, heads, size).transpose(1, 2)
    v = sa.value(hidden).view(b, length, heads, size).transpose(1, 2)
    scores = (q @ k.transpose(-1, -2)) * size ** -0.5
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    context = (sa.dropout(scores.softmax(dim=-1)) @ v).transpose(1, 2).reshape(b, q_in.shape[1], heads * size)
    attended = layer.attention.output(context, q_in)  # dense, dropout, LayerNorm(x + residual)
    return layer.output(layer.intermediate(attended), attended)


class TopLayers(nn.Module):
    """The top ``k`` transformer layers of a text encoder as a trainable module on cached hidden states.

    With ``ModelConfig.text_tune_layers = k`` the frozen lower layers run once per text (their outputs are cached
    by :meth:`hybridlib.features.cache.FeatureCache.text_hidden_states`) and only these ``k`` layers train:
    ``forward(hidden [B, L, D], lengths [B]) -> [B, D]`` continues the encoder from layer ``n - k`` and pools
    like it (``cls``: the first token, computed alone in the last layer; ``mean``: the valid tokens' mean).
    Built from an encoder with :meth:`from_encoder` (a deep copy of its pretrained top layers).
    """

    def __init__(self, layers: nn.ModuleList, pooling: str = "cls"):
        super().__init__()
        if pooling not in {"cls", "mean"}:
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.layers = layers
        self.pooling = pooling

    @classmethod
    def from_encoder(cls, encoder: TextEncoder, k: int) -> TopLayers:
        layers = transformer_layers(encoder.model)
        if not 1 <= k <= len(layers):
            raise ValueError(f"text_tune_layers must be in [1, {len(layers)}] for {encoder.name!r}, got {k}")
        top = cls(nn.ModuleList(copy.deepcopy(layer) for layer in layers[len(layers) - k:]), encoder.pooling)
        return top.requires_grad_(True)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        mask = length_mask(lengths, hidden.shape[1], batch=hidden.shape[0], device=hidden.device)
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            hidden = bert_layer(layer, hidden, mask, cls_only=last and self.pooling == "cls")
        return hidden[:, 0] if self.pooling == "cls" else masked_mean(hidden, mask)


def resolve_text_model(name: str) -> str:
    """``"minilm"`` -> the bundled folder; anything else is returned for ``from_pretrained``."""
    if name == "minilm":
        from hybridlib.bundled import minilm_dir

        return str(minilm_dir())
    return str(Path(name)) if Path(name).exists() else name


def build_text_encoder(
    name: str = "minilm", max_tokens: int | None = 32, pooling: str = "cls", trainable: bool = False,
    text_mode: str = "hybrid", dropout: float | None = None, train_when_frozen: bool = False,
) -> TextEncoder:
    """Load tokenizer and model ``name`` (``"minilm"``, a hub id such as ``bert-base-uncased``, or a folder).

    ``dropout``: hidden and attention-probability dropout of the transformer (None: its own config; Mei et
    al. pass 0.2 to ``from_pretrained``, as done here).
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    source = resolve_text_model(name)
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the pooler/MLM-head "unused weights" notices are expected
    hf_logging.disable_progress_bar()
    extra = {} if dropout is None else {"hidden_dropout_prob": float(dropout),
                                        "attention_probs_dropout_prob": float(dropout)}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        try:
            model = AutoModel.from_pretrained(source, add_pooling_layer=False, **extra)
        except TypeError:  # models without a pooler argument
            model = AutoModel.from_pretrained(source, **extra)
    except OSError as exc:
        raise TextModelError(
            f"cannot load text model {name!r} from {source!r}: {one_line(exc)}. Offline, use 'minilm' or a "
            "local folder.") from None
    except Exception as exc:  # noqa: BLE001 - damaged or refused weights (UnpicklingError, SafetensorError, ...)
        files = sorted(str(p) for p in Path(source).glob("*") if p.suffix in (".bin", ".safetensors", ".pt")) \
            if Path(source).is_dir() else []
        raise TextModelError(
            f"text model {name!r}: {', '.join(files) or source} is damaged or not a plain-data checkpoint and was "
            f"not loaded ({one_line(exc)})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    encoder = TextEncoder(
        model, tokenizer, name=name, max_tokens=max_tokens, pooling=pooling, trainable=trainable,
        text_mode=text_mode, train_when_frozen=train_when_frozen,
    )
    return encoder.eval()


# The published configurations of the papers' text encoders (config.json of bert-base-uncased and
# bert-large-uncased); their uncased WordPiece vocabulary is the bundled MiniLM's (30522 entries).
BERT_CONFIGS: dict[str, dict] = {
    name: {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 30522, "hidden_size": hidden,
           "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": 4 * hidden,
           "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
           "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
           "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute"}
    for name, hidden, layers, heads in (("bert-base-uncased", 768, 12, 12), ("bert-large-uncased", 1024, 24, 16))
}
STANDIN_MARKER = "standin.json"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def write_random_text_model(name: str, folder: str | Path, seed: int = 0) -> Path:
    """Write ``name``'s architecture (:data:`BERT_CONFIGS`) with random weights as a local model folder.

    The folder loads through the path a user takes (``build_text_encoder(folder)`` /
    ``model.text_encoder: FOLDER``): ``config.json`` and ``model.safetensors`` from ``transformers``'
    ``save_pretrained``, the bundled uncased WordPiece tokenizer files (the same vocabulary as
    bert-base/large-uncased) and ``standin.json`` marking the weights as random (the ingredient report shows
    it). Deterministic in ``seed``. Returns the folder.
    """
    import json
    import shutil

    from transformers import BertConfig, BertModel

    from hybridlib.bundled import minilm_dir

    if name not in BERT_CONFIGS:
        raise ValueError(f"no published configuration known for {name!r}; choose from {sorted(BERT_CONFIGS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():  # the caller's random state is left alone
        torch.manual_seed(seed)
        model = BertModel(BertConfig(**BERT_CONFIGS[name]), add_pooling_layer=False)
    model.save_pretrained(folder)
    tokenizer_dir = minilm_dir()
    for file in TOKENIZER_FILES:
        if (tokenizer_dir / file).is_file():
            shutil.copyfile(tokenizer_dir / file, folder / file)
    (folder / STANDIN_MARKER).write_text(json.dumps(
        {"architecture": name, "weights": f"random initialisation (seed {seed}), NOT pretrained",
         "tokenizer": "bundled uncased WordPiece (vocabulary of bert-base-uncased)"}, indent=1) + "\n")
    return folder


def text_model_summary(encoder: TextEncoder) -> dict:
    """Architecture facts of a text encoder's transformer (for the ingredient report)."""
    return _summary(encoder.name, encoder.model.config)


def describe_text_model(name: str) -> dict:
    """:func:`text_model_summary` from the model's ``config.json`` alone (no weights loaded); for a hub id
    that is not available offline, ``{"name", "error"}``."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(resolve_text_model(name))
    except OSError as exc:
        return {"name": name, "error": str(exc).splitlines()[0][:200]}
    return _summary(name, config)


def _summary(name: str, config) -> dict:
    source = Path(resolve_text_model(name))
    return {"name": name, "hidden_size": int(config.hidden_size),
            "layers": int(getattr(config, "num_hidden_layers", 0)),
            "heads": int(getattr(config, "num_attention_heads", 0)),
            "hidden_dropout": getattr(config, "hidden_dropout_prob", None),
            "attention_dropout": getattr(config, "attention_probs_dropout_prob", None),
            "vocab_size": int(getattr(config, "vocab_size", 0)),
            "max_position_embeddings": int(getattr(config, "max_position_embeddings", 0)),
            "standin": (source / STANDIN_MARKER).is_file() if source.is_dir() else False}
