"""Text encoders for queries (captions) and metadata: BERT-style transformers from ``transformers``.

Preprocessing follows the hybrid paper (Primus & Widmer): lowercase, remove punctuation, WordPiece,
pad to the longest text in the batch, truncate at 32 tokens; the transformed ``[CLS]`` token is the
text embedding (``pooling="mean"`` averages the non-padding tokens instead).

``build_text_encoder("minilm")`` loads the bundled MiniLM-L6 (384-d, runs offline); any other name or
path goes to ``transformers`` (e.g. ``bert-base-uncased`` as in the paper, ``bert-large-uncased``).
"""

from __future__ import annotations

import re
import string
import unicodedata
from pathlib import Path

import torch
from torch import nn

# the paper removes punctuation; ASCII punctuation plus any Unicode "P*" character is dropped
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_SPACES = re.compile(r"\s+")


def preprocess_text(text: str) -> str:
    """Lowercase, delete punctuation characters, collapse whitespace (``"A dog's bark!" -> "a dogs bark"``).

    Punctuation is deleted rather than replaced by a space (the common choice in the DCASE retrieval
    baselines), so ``"dog's"`` stays one word.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}: {text!r}")
    text = _PUNCT.sub("", text.lower())
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    return _SPACES.sub(" ", text).strip()


class TextEncoder(nn.Module):
    """A transformer text encoder: ``forward(texts: list[str]) -> [B, embed_dim]``.

    ``trainable=False`` freezes the weights, keeps the transformer in eval mode (no dropout) even when
    the parent model trains, and runs it without building a graph.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        name: str,
        max_tokens: int = 32,
        pooling: str = "cls",
        trainable: bool = False,
    ):
        super().__init__()
        if pooling not in {"cls", "mean"}:
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        if max_tokens < 2:
            raise ValueError(f"max_tokens must be >= 2 ([CLS] and [SEP]), got {max_tokens}")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_tokens = max_tokens
        self.pooling = pooling
        self.embed_dim = int(model.config.hidden_size)
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
        if not self.trainable:
            self.model.eval()
        return self

    def config(self) -> dict:
        return {"name": self.name, "max_tokens": self.max_tokens, "pooling": self.pooling}

    @staticmethod
    def preprocess(text: str) -> str:
        return preprocess_text(text)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Preprocess and WordPiece-tokenize; pad to the longest, truncate at ``max_tokens``."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        clean = [self.preprocess(t) for t in texts]
        return self.tokenizer(
            clean, padding="longest", truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )

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


def resolve_text_model(name: str) -> str:
    """``"minilm"`` -> the bundled folder; anything else is returned for ``from_pretrained``."""
    if name == "minilm":
        from hybridlib.bundled import minilm_dir

        return str(minilm_dir())
    return str(Path(name)) if Path(name).exists() else name


def build_text_encoder(
    name: str = "minilm", max_tokens: int = 32, pooling: str = "cls", trainable: bool = False
) -> TextEncoder:
    """Load tokenizer and model ``name`` (``"minilm"``, a hub id such as ``bert-base-uncased``, or a folder)."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    source = resolve_text_model(name)
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the pooler/MLM-head "unused weights" notices are expected
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source, add_pooling_layer=False)
    except TypeError:  # models without a pooler argument
        model = AutoModel.from_pretrained(source)
    except OSError as exc:
        raise OSError(
            f"cannot load text model {name!r} from {source!r}: {exc}. Offline, use 'minilm' or a local folder."
        ) from exc
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    encoder = TextEncoder(
        model, tokenizer, name=name, max_tokens=max_tokens, pooling=pooling, trainable=trainable
    )
    return encoder.eval()
