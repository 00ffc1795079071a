"""Search a trained run: type a query, get the top-k clips of a collection and what each score is made of.

::

    searcher = Searcher.from_run("runs/late")        # a seed folder, or a run folder of seed-*/ (lowest seed)
    result = searcher.search("a dog barks twice", k=10)
    print(result.to_text())                          # the table `python -m hybridlib search` prints
    searcher.search("a dog barks twice", audio_alone=True)   # metadata hidden: what the audio alone retrieves

**Collection.** Every clip of one split of the run's dataset (default: its evaluation split), prepared exactly
as for evaluation (:func:`hybridlib.features.prepare.prepare_data`, the run's metadata protocol included), and
a typed query is embedded the way evaluation embeds captions (a frozen text encoder's embeddings come from the
feature cache, :meth:`~hybridlib.features.cache.FeatureCache.text_embeddings`; a new query is added to it like any
text; with ``text_tune_layers`` the frozen lower layers' states are computed batch-invariantly like the cached
ones). So a caption of that split typed as a query gets exactly the scores evaluation computes, and its clip the
rank evaluation counts (a test checks it). A fully fine-tuned text encoder (``text_trainable``) runs on the strings
in whatever batch they come, so its scores can differ from evaluation's in the last digits.

**Ranking** (:func:`rank_items`): the order of :mod:`hybridlib.metrics`. Items are listed by descending score;
the rank shown is the one the metrics would give the item if it were the relevant one, ``#{items scoring >=
it}``: ties are pessimistic (tied items all get the worst rank of their group, so a degenerate model with
constant scores shows every item at rank ``A``). Tied items are listed in collection order.

**What a score is made of** (:func:`score_parts`; the parts add up to the score):

* ``mid``: the query's softmax weights mix two cosines, ``w_a cos(q_a, i_a) + w_m cos(q_m, i_m)``; the parts
  are the two weighted terms, and the weights are shown (for an item without metadata under
  ``missing_metadata="audio-only"`` the metadata weight is 0 and the audio weight 1).
* ``late`` with a linear projection (the paper's): the item vector is ``P(a + m) / n`` with ``P`` affine, so
  it splits exactly into ``W a / n`` (audio), ``W m / n`` (metadata) and ``b / n`` (the projection's bias,
  shared by all items but divided by each item's norm); the query's cosine splits the same way
  (:meth:`~hybridlib.models.retrieval.RetrievalModel.item_parts`). Honest caveat: the audio part is not
  "what the audio alone would score" - the normaliser ``n`` depends on both terms. An MLP projection has no
  additive split; then only the score is shown.
* content-only models (``none``, ``mei``): the whole score is audio; ``metadata-only``: all metadata.

**Audio alone** (``audio_alone=True``, the widget's "hide metadata" toggle): every item is represented the way
the model represents a clip that came *without* metadata (:meth:`~hybridlib.features.splits.EncodedSplit.
without_metadata`), i.e. its ``missing_metadata`` policy, so the only item-specific input left is the audio:

* ``late``: ``learned`` adds the learned stand-in embedding (one vector, the same for every item) instead of
  the clip's metadata; ``audio-only`` drops the metadata term, ``P(a) / n``;
* ``mid``: ``learned`` feeds the stand-in as the metadata token (the transformer still mixes it with the
  audio frames, and its score still has weight ``w_m``); ``audio-only`` masks the token out of attention and
  scores ``cos(q_a, i_a)`` alone;
* ``none``, ``mei``: the model never sees metadata, so nothing changes (the toggle only hides the keywords);
* ``metadata-only``: there is no audio; audio alone is refused.

**Cache.** The collection's embeddings (full, audio alone, and late fusion's parts) are computed once and
stored as safetensors under ``<cache>/search/``, keyed by a hash of the run's ``best/model.safetensors``, the
fingerprint of the prepared data (:func:`~hybridlib.features.prepare.data_fingerprint`) and the split; a
retrained model or another metadata protocol gets another file. Writes are atomic.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hybridlib import runs
from hybridlib.config import TrainConfig
from hybridlib.data.items import Item
from hybridlib.data.metadata import metadata_text
from hybridlib.data.splits import normalize_split
from hybridlib.evaluation import embed_items
from hybridlib.features.cache import save_tensors
from hybridlib.features.prepare import data_fingerprint, load_items, metadata_kind_for, prepare_data
from hybridlib.features.splits import EncodedSplit
from hybridlib.models.retrieval import ItemEmbeddings, QueryEmbeddings
from hybridlib.util.devices import to_device
from hybridlib.util.errors import UserError
from hybridlib.util.modules import module_mode
from hybridlib.util.values import describe_value, not_utf8

SEARCH_CACHE_VERSION = 1
DEFAULT_K = 10
#: what "audio alone" means, per fusion (shown by the widget and the command)
AUDIO_ALONE_MEANING = {
    "late": "each item as the model represents a clip without metadata (missing_metadata policy): the "
            "clip's metadata term replaced by the learned stand-in, or dropped",
    "mid": "each item as the model represents a clip without metadata (missing_metadata policy): the learned "
           "stand-in as metadata token, or the token masked and only the audio score kept",
    "none": "the model never sees metadata: the same ranking, keywords hidden",
    "mei": "the model never sees metadata: the same ranking, keywords hidden",
}


# ---------------------------------------------------------------------------------------------------- ranking
def rank_items(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(order, ranks)`` of the items of one query, as :mod:`hybridlib.metrics` ranks them.

    ``order``: item indices by descending score, ties in collection order (a stable sort). ``ranks``: for each
    item (in collection order) its pessimistic 1-based rank ``#{items c : s_c >= s_i}``, which is what
    :func:`hybridlib.metrics.relevant_ranks` gives item ``i`` as the query's one relevant item.
    """
    scores = torch.as_tensor(scores)
    if scores.dim() != 1 or scores.numel() == 0:
        raise ValueError(f"scores must be a non-empty 1-D tensor (one per item), got shape {tuple(scores.shape)}")
    if not torch.is_floating_point(scores):
        scores = scores.float()
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN; ranks would be undefined")
    scores = scores.detach().cpu()
    order = torch.sort(scores, descending=True, stable=True).indices
    ascending = torch.sort(scores).values
    ranks = scores.numel() - torch.searchsorted(ascending, scores, right=False)  # minus #{c : s_c < s_i}
    return order, ranks


# ---------------------------------------------------------------------------------------------------- parts
def score_parts(model, queries: QueryEmbeddings, items: ItemEmbeddings,
                item_parts: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The additive parts ``{name: [Q, A]}`` of ``model.similarity(queries, items)`` (module docstring).

    ``item_parts``: late fusion's split of the item vectors (:meth:`RetrievalModel.item_parts`); without it a
    late-fusion score has no parts (``{}``).
    """
    fusion = model.cfg.fusion
    if fusion == "mid":
        w = model.score_weights(queries, items)
        return {"audio": w[..., 0] * (queries.embedding @ items.embedding.T),
                "metadata": w[..., 1] * (queries.metadata @ items.metadata.T)}
    if fusion == "late":
        return {} if item_parts is None else {k: queries.embedding @ v.T for k, v in item_parts.items()}
    score = model.similarity(queries, items)
    return {"metadata": score} if fusion == "metadata-only" else {"audio": score}


# ---------------------------------------------------------------------------------------------------- index
@dataclass
class ItemIndex:
    """A collection embedded under one model: what search scores queries against (cached on disk).

    ``items``: as evaluation embeds them; ``audio_alone``: every item through the model's missing-metadata
    path (None for models without metadata input); ``parts``/``audio_alone_parts``: late fusion's exact split
    of the item vectors (None otherwise).
    """

    clip_ids: list[str]
    items: ItemEmbeddings
    audio_alone: ItemEmbeddings | None = None
    parts: dict[str, torch.Tensor] | None = None
    audio_alone_parts: dict[str, torch.Tensor] | None = None

    def to_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for group in ("items", "audio_alone"):
            emb = getattr(self, group)
            for f in dataclasses.fields(ItemEmbeddings) if emb is not None else ():
                value = getattr(emb, f.name)
                if value is not None:
                    out[f"{group}.{f.name}"] = value.detach().cpu().contiguous()
        for group in ("parts", "audio_alone_parts"):
            for name, value in (getattr(self, group) or {}).items():
                out[f"{group}.{name}"] = value.detach().cpu().contiguous()
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], clip_ids: list[str]) -> ItemIndex:
        def group(prefix):
            return {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(prefix + ".")}

        def embeddings(prefix):
            values = group(prefix)
            return ItemEmbeddings(**values) if values else None

        return cls(clip_ids, embeddings("items"), embeddings("audio_alone"), group("parts") or None,
                   group("audio_alone_parts") or None)


@torch.no_grad()
def item_parts_of(model, split: EncodedSplit, batch_size: int = 256, device=None) -> dict[str, torch.Tensor] | None:
    """:meth:`RetrievalModel.item_parts` over every clip of ``split`` (chunked, eval mode, on CPU); None when
    the model has no additive split."""
    if model.cfg.fusion != "late":
        return None
    device = device or next(model.parameters()).device
    with module_mode(model):
        chunks = [model.item_parts(to_device(b, device)) for b in split.item_chunks(batch_size)]
    if chunks[0] is None:
        return None
    return {k: torch.cat([c[k] for c in chunks]).cpu() for k in chunks[0]}


def build_index(model, split: EncodedSplit, batch_size: int = 256, device=None) -> ItemIndex:
    """Embed every clip of ``split`` for search: as evaluation does, audio alone, and late fusion's parts."""
    items = embed_items(model, split, batch_size, device).detach().to("cpu")
    index = ItemIndex(list(split.clip_ids), items, parts=item_parts_of(model, split, batch_size, device))
    if model.cfg.fusion in ("late", "mid"):
        bare = split.without_metadata()
        index.audio_alone = embed_items(model, bare, batch_size, device).detach().to("cpu")
        index.audio_alone_parts = item_parts_of(model, bare, batch_size, device)
    return index


def model_digest(seed_dir: str | Path) -> str:
    """First 16 hex digits of the SHA-1 of a run's ``best/model.safetensors`` (the search cache key)."""
    path = Path(seed_dir) / runs.BEST / "model.safetensors"
    h = hashlib.sha1()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def index_path(cache_root: str | Path, digest: str, fingerprint: str, split: str) -> Path:
    return Path(cache_root) / "search" / f"{digest}-{fingerprint}-{split}.safetensors"


def save_index(index: ItemIndex, path: Path, info: dict) -> Path:
    meta = {"version": str(SEARCH_CACHE_VERSION), "clip_ids": json.dumps(index.clip_ids),
            **{k: str(v) for k, v in info.items()}}
    save_tensors(index.to_tensors(), path, meta)
    return path


def load_index(path: Path, clip_ids: list[str]) -> ItemIndex | None:
    """The cached index at ``path``, or None when it is missing, unreadable, of another version or of other clips."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("version") != str(SEARCH_CACHE_VERSION) or json.loads(meta.get("clip_ids", "[]")) != clip_ids:
                return None
            # fresh copies: a tensor backed by the file's buffer may be aligned differently from a computed one,
            # and BLAS kernels can then round differently (1e-8): a cached index must score like a fresh one
            tensors = {k: f.get_tensor(k).clone() for k in f.keys()}
    except (OSError, ValueError, RuntimeError, SafetensorError):  # truncated or garbled: recompute
        return None
    return ItemIndex.from_tensors(tensors, clip_ids)


# ---------------------------------------------------------------------------------------------------- results
@dataclass
class SearchHit:
    """One retrieved clip: its pessimistic ``rank``, ``score``, the score's ``parts`` and what to show of it."""

    rank: int
    index: int
    clip_id: str
    score: float
    parts: dict[str, float]
    weights: tuple[float, float] | None  # mid fusion: the effective (audio, metadata) weights for this item
    audio_path: Path | None
    captions: list[str]
    keywords: list[str] | None
    metadata_text: str | None  # what the model encodes as the clip's metadata (None: the model uses none)


@dataclass
class SearchResult:
    """The top-k of one query (``hits`` in ranking order)."""

    query: str
    fusion: str
    audio_alone: bool
    split: str
    n_items: int
    hits: list[SearchHit]
    query_weights: tuple[float, float] | None = None  # mid fusion: softmax(W q + b), (audio, metadata)
    part_names: list[str] = field(default_factory=list)

    def to_frame(self):
        """The hits as a DataFrame (one row per hit; parts as columns)."""
        import pandas as pd

        rows = []
        for h in self.hits:
            rows.append({"rank": h.rank, "score": h.score, **{f"{k} part": v for k, v in h.parts.items()},
                         "clip": h.clip_id, "keywords": " ".join(h.keywords or []),
                         "caption": h.captions[0] if h.captions else ""})
        return pd.DataFrame(rows)

    def describe(self) -> str:
        how = "audio alone (metadata hidden)" if self.audio_alone else "full model"
        line = f"query {describe_value(self.query)}: {self.fusion} fusion, ranked by the {how}, top {len(self.hits)} of " \
               f"{self.n_items} clips ({self.split})"
        if self.query_weights is not None:
            line += f"; query weights audio {self.query_weights[0]:.2f}, metadata {self.query_weights[1]:.2f}"
        return line

    def to_text(self, caption_width: int = 60, keyword_width: int = 32) -> str:
        """The table ``python -m hybridlib search`` prints: rank, score, its parts, clip, keywords, a caption."""
        def cut(text, width):
            return text if len(text) <= width else text[: width - 1] + "…"

        parts = self.part_names
        head = f"{'rank':>4}  {'score':>7}" + "".join(f"  {p:>8}" for p in parts)
        head += f"  {'clip':<22}  {'keywords':<{keyword_width}}  caption"
        lines = [self.describe(), head]
        for h in self.hits:
            row = f"{h.rank:>4}  {h.score:>7.4f}" + "".join(f"  {h.parts.get(p, float('nan')):>8.4f}" for p in parts)
            keywords = "(hidden)" if self.audio_alone else " ".join(h.keywords or []) or "-"
            row += f"  {cut(h.clip_id, 22):<22}  {cut(keywords, keyword_width):<{keyword_width}}  " \
                   f"{cut(h.captions[0] if h.captions else '', caption_width)}"
            lines.append(row)
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- searcher
class Searcher:
    """Queries against one trained model and one embedded collection (see the module docstring).

    Build it with :meth:`from_run`; ``items`` are the collection's clips (captions, keywords, audio paths) in
    the order of ``index``.
    """

    def __init__(self, model, cfg: TrainConfig, items: list[Item], index: ItemIndex, split: str,
                 text_encoder=None, info: dict | None = None, feature_cache=None):
        if [it.clip_id for it in items] != index.clip_ids:
            raise ValueError("the index was built for other clips than the ones given")
        self.model = model.cpu().eval()  # queries are scored on the CPU, against the CPU index
        self.cfg = cfg
        self.items = list(items)
        self.index = index
        self.split = split
        self.text_encoder = text_encoder
        if feature_cache is None:
            from hybridlib.features.cache import FeatureCache

            feature_cache = FeatureCache(cfg.cache_dir)
        self.feature_cache = feature_cache
        self.info = dict(info or {})
        kind = metadata_kind_for(cfg, cfg.benchmark)
        self.metadata_texts = [metadata_text(it, kind) if kind else None for it in self.items]

    @property
    def fusion(self) -> str:
        return self.model.cfg.fusion

    @property
    def audio_alone_available(self) -> bool:
        return self.fusion != "metadata-only"

    @property
    def audio_alone_meaning(self) -> str:
        return AUDIO_ALONE_MEANING.get(self.fusion, "not available: this model has no audio input")

    @classmethod
    def from_run(cls, run: str | Path, seed: int | None = None, split: str | None = None, device="cpu",
                 cache_root: str | Path | None = None, progress: bool = False) -> Searcher:
        """Load the trained model of ``run`` (:func:`hybridlib.runs.trained_seed_dir`) and the collection
        ``split`` (default: the run's evaluation split), embedding it (on ``device``) only when the cache under
        ``cache_root`` (default: the run's feature cache) has no copy; queries are then scored on the CPU."""
        from hybridlib.features.cache import FeatureCache
        from hybridlib.paths import cache_dir

        start = time.perf_counter()
        seed_dir = runs.trained_seed_dir(run, seed)
        model, cfg = runs.load_trained(seed_dir, device)
        split_name = normalize_split(cfg.benchmark, split) if split else cfg.splits()[2]
        cfg = cfg.replace(eval_split=split_name)
        items = list(load_items(cfg, cfg.benchmark, split_name, progress))
        clip_ids = [it.clip_id for it in items]
        fingerprint = data_fingerprint(cfg)
        root = Path(cache_root or cfg.cache_dir or cache_dir())
        path = index_path(root, model_digest(seed_dir), fingerprint, split_name)
        index = load_index(path, clip_ids)
        hit = index is not None
        if index is None:
            data = prepare_data(cfg, progress=progress, roles=("test",))
            index = build_index(model, data.test, cfg.eval_batch_size)
            save_index(index, path, {"seed_dir": seed_dir, "split": split_name, "fingerprint": fingerprint})
        mcfg = model.cfg
        text_encoder = None
        if not (mcfg.text_trainable or getattr(mcfg, "text_tune_layers", 0)):
            from hybridlib.models.text import build_text_encoder

            text_encoder = build_text_encoder(mcfg.text_encoder, max_tokens=mcfg.text_max_tokens,
                                              pooling=mcfg.text_pooling).eval()
        info = {"seed_dir": str(seed_dir), "cache": str(path), "cache_hit": hit,
                "seconds": round(time.perf_counter() - start, 2)}
        return cls(model, cfg, items, index, split_name, text_encoder, info, FeatureCache(cfg.cache_dir))

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def embed_queries(self, texts: list[str]) -> QueryEmbeddings:
        """Typed queries embedded as evaluation embeds captions (see the module docstring), on CPU."""
        if self.text_encoder is not None:
            batch = {"caption_emb": self.feature_cache.text_embeddings(list(texts), self.text_encoder, progress=False)}
        else:
            batch = {"captions": list(texts)}
        return self.model.embed_queries(batch).detach()

    def _items(self, audio_alone: bool) -> tuple[ItemEmbeddings, dict | None]:
        if not audio_alone:
            return self.index.items, self.index.parts
        if not self.audio_alone_available:
            raise UserError("a metadata-only model has no audio: there is no audio-alone ranking")
        if self.index.audio_alone is None:  # content-only models never see metadata
            return self.index.items, self.index.parts
        return self.index.audio_alone, self.index.audio_alone_parts

    @torch.no_grad()
    def scores(self, queries: list[str], audio_alone: bool = False) -> torch.Tensor:
        """``[Q, A]`` scores of the queries against every clip (what evaluation computes for captions)."""
        items, _ = self._items(audio_alone)
        model = self.model
        return model.similarity(self.embed_queries(queries), items).float()

    @torch.no_grad()
    def search(self, query: str, k: int = DEFAULT_K, audio_alone: bool = False) -> SearchResult:
        """The top ``k`` clips for ``query`` (see the module docstring for ranks, parts and audio alone)."""
        if not isinstance(query, str) or not query.strip():
            raise UserError("the query is empty: type what you want to hear")
        if not_utf8(query):
            raise UserError(f"the query {describe_value(query)} is not UTF-8 text ({not_utf8(query)})")
        if k < 1:
            raise UserError(f"k must be at least 1, got {k}")
        items, item_parts = self._items(audio_alone)
        model = self.model
        queries = self.embed_queries([query])
        scores = model.similarity(queries, items).float()[0]
        parts = {name: value[0] for name, value in score_parts(model, queries, items, item_parts).items()}
        if audio_alone and "metadata" in parts and items.has_metadata is not None:
            # no clip has metadata now: the "metadata" part is the learned stand-in's, or 0 (audio-only policy)
            stand_in = parts.pop("metadata")
            if self.model.cfg.missing_metadata == "learned":
                parts["stand-in"] = stand_in
        weights = model.score_weights(queries, items)[0] if self.fusion == "mid" else None
        order, ranks = rank_items(scores)
        hits = []
        for i in order[: min(k, len(order))].tolist():
            item = self.items[i]
            hits.append(SearchHit(
                rank=int(ranks[i]), index=i, clip_id=item.clip_id, score=float(scores[i]),
                parts={name: float(value[i]) for name, value in parts.items()},
                weights=None if weights is None else (float(weights[i, 0]), float(weights[i, 1])),
                audio_path=item.audio_path, captions=list(item.captions), keywords=item.keywords,
                metadata_text=None if audio_alone else self.metadata_texts[i]))
        query_weights = None
        if self.fusion == "mid":
            query_weights = tuple(float(w) for w in queries.weights[0])
        return SearchResult(query, self.fusion, audio_alone, self.split, len(self.items), hits, query_weights,
                            list(parts))

    def rank_of(self, query: str, clip_id: str, audio_alone: bool = False) -> int:
        """The pessimistic rank of one clip for ``query`` (1 = first)."""
        ids = self.index.clip_ids
        if clip_id not in ids:
            raise UserError(f"clip {clip_id!r} is not in the collection ({self.split})")
        _, ranks = rank_items(self.scores([query], audio_alone)[0])
        return int(ranks[ids.index(clip_id)])


def agreement_with_evaluation(searcher: Searcher, batch_size: int = 256) -> dict:
    """Type every caption of the collection as a query: do search's scores and ranks equal evaluation's?

    Evaluation (:func:`hybridlib.evaluation.similarity_matrix` on the prepared split) and search
    (:meth:`Searcher.scores` on the caption strings, ranks by :func:`rank_items`) are computed independently;
    returns the number of captions, the largest score difference, how many captions give their clip the same
    rank in both, and text-to-audio mAP@10 from each.
    """
    from hybridlib.evaluation import caption_ranks, metrics_from_similarity, similarity_matrix

    data = prepare_data(searcher.cfg, progress=False, roles=("test",))
    split = data.test
    if split.clip_ids != searcher.index.clip_ids:
        raise ValueError("the searcher's collection is not the prepared split")
    evaluated = similarity_matrix(searcher.model, split, batch_size)
    searched = torch.cat([searcher.scores(split.captions[s:s + batch_size])
                          for s in range(0, split.n_captions, batch_size)])
    own = split.caption_clip
    eval_ranks = caption_ranks(evaluated, own)
    search_ranks = torch.stack([rank_items(row)[1][int(c)] for row, c in zip(searched, own)])
    return {"captions": split.n_captions, "max_abs_score_diff": float((evaluated - searched).abs().max()),
            "same_rank": int((eval_ranks == search_ranks).sum()),
            "t2a_mAP@10_evaluation": metrics_from_similarity(evaluated, own)["t2a_mAP@10"],
            "t2a_mAP@10_search": metrics_from_similarity(searched, own)["t2a_mAP@10"]}
