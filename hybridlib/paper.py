"""Both papers' reported numbers as data, and side-by-side comparison with our results.

* Primus & Widmer (2024), "Fusing Audio and Metadata Embeddings Improves Language-based Audio Retrieval":
  Table I (:data:`HYBRID_TABLE_I`), Table II (:data:`HYBRID_TABLE_II`) and the numbers quoted only in the
  text (:data:`HYBRID_TEXT`; those of section V-E also as rows, :data:`HYBRID_TEXT_ROWS`).
* Mei et al. (2022), "On Metric Learning for Audio-Text Cross-Modal Retrieval": Table 1
  (:data:`MEI_TABLE_1`), Table 2 (:data:`MEI_TABLE_2`) and the training settings of section 3.2
  (:data:`MEI_SETTINGS`).

Every row has a stable ``row`` id (e.g. ``"hybrid/clotho/late-os"``); experiment configs name the row they
reproduce (``TrainConfig.paper_row``) so :func:`compare` can put our numbers next to the paper's.
The paper's *findings* (e.g. "late fusion beats the baseline") are :class:`Finding` objects that
:func:`check_findings` evaluates on our numbers: does the direction hold?

All values are percentages, as printed in the papers. ``map_bound="upper"`` marks Table I values printed with
``<`` (upper bounds estimated from recalls by the hybrid paper's authors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

METRICS_T2A = ("mAP@10", "R@1", "R@5", "R@10")
RECALLS = ("R@1", "R@5", "R@10")


def _h(row, name, dataset, meta, fusion, extra, m, r1, r5, r10, bound=None, text_encoder="bert-base"):
    return {
        "row": row, "paper": "hybrid", "table": "I", "name": name, "dataset": dataset, "metadata": meta,
        "fusion": fusion, "extra_data": extra, "text_encoder": text_encoder,
        "t2a_mAP@10": m, "t2a_R@1": r1, "t2a_R@5": r5, "t2a_R@10": r10, "map_bound": bound,
    }


#: Hybrid paper, Table I. Related-work rows first (WavCaps, Cacophony, DCASE23), then the paper's models.
#: ``dataset`` is the benchmark evaluated on; ``extra_data=True`` means trained on ClothoV2 + AudioCaps
#: (or, for related work, on additional data).
HYBRID_TABLE_I: list[dict] = [
    _h("related/clotho/wavcaps", "WavCaps", "clotho", None, None, True, 35.97, 21.2, 46.4, 59.4, "upper"),
    _h("related/audiocaps/wavcaps", "WavCaps", "audiocaps", None, None, True, 54.13, 34.7, 69.1, 82.5, "upper"),
    _h("related/clotho/cacophony", "Cacophony", "clotho", None, None, True, 35.20, 20.2, 45.9, 58.8, "upper"),
    _h("related/audiocaps/cacophony", "Cacophony", "audiocaps", None, None, True, 60.00, 41.0, 75.3, 86.4,
       "upper"),
    _h("related/clotho/dcase23", "DCASE23", "clotho", None, None, True, 36.65, 24.26, 53.89, 66.87),
    # section two: bert-base, trained on one dataset
    _h("hybrid/clotho/baseline", "baseline", "clotho", None, None, False, 26.8, 15.81, 41.31, 56.17),
    _h("hybrid/audiocaps/baseline", "baseline", "audiocaps", None, None, False, 54.14, 39.04, 75.04, 87.50),
    _h("hybrid/clotho/mid-os", "hybrid", "clotho", "os", "mid", False, 28.25, 16.98, 43.53, 57.42),
    _h("hybrid/audiocaps/mid-cs", "hybrid", "audiocaps", "cs", "mid", False, 57.4, 42.11, 78.50, 89.53),
    _h("hybrid/clotho/late-os", "hybrid", "clotho", "os", "late", False, 29.16, 18.17, 43.46, 56.93),
    _h("hybrid/audiocaps/late-cs", "hybrid", "audiocaps", "cs", "late", False, 57.83, 42.75, 78.65, 89.77),
    _h("hybrid/clotho/mid-fs", "hybrid", "clotho", "fs", "mid", False, 33.57, 22.37, 48.50, 61.80),
    _h("hybrid/clotho/late-fs", "hybrid", "clotho", "fs", "late", False, 35.62, 24.87, 50.05, 62.36),
    # section three: bert-large
    _h("hybrid/clotho/large-baseline", "large-baseline", "clotho", None, None, False, 27.98, 16.68, 43.32, 57.85,
       text_encoder="bert-large"),
    _h("hybrid/audiocaps/large-baseline", "large-baseline", "audiocaps", None, None, False, 55.41, 40.15, 76.50,
       88.18, text_encoder="bert-large"),
    _h("hybrid/clotho/large-late-os", "large-hybrid", "clotho", "os", "late", False, 29.88, 18.39, 45.05, 58.62,
       text_encoder="bert-large"),
    _h("hybrid/audiocaps/large-late-cs", "large-hybrid", "audiocaps", "cs", "late", False, 58.56, 43.47, 79.38,
       90.16, text_encoder="bert-large"),
    _h("hybrid/clotho/large-late-fs", "large-hybrid", "clotho", "fs", "late", False, 37.01, 26.2, 51.14, 63.95,
       text_encoder="bert-large"),
    # last section: trained on ClothoV2 + AudioCaps (OS tags for Clotho items, CS tags for AudioCaps items)
    _h("hybrid/clotho/both-baseline", "baseline", "clotho", None, None, True, 29.94, 18.74, 45.06, 58.95),
    _h("hybrid/audiocaps/both-baseline", "baseline", "audiocaps", None, None, True, 54.00, 38.75, 75.01, 87.46),
    _h("hybrid/clotho/both-late", "hybrid", "clotho", "os+cs", "late", True, 31.48, 20.08, 46.77, 60.41),
    _h("hybrid/audiocaps/both-late", "hybrid", "audiocaps", "os+cs", "late", True, 57.82, 42.79, 78.48, 89.86),
]

#: The "Δ map@10" column of Table I: (row, baseline row, printed delta).
HYBRID_TABLE_I_DELTAS: list[tuple[str, str, float]] = [
    ("hybrid/clotho/mid-os", "hybrid/clotho/baseline", 1.45),
    ("hybrid/audiocaps/mid-cs", "hybrid/audiocaps/baseline", 3.26),
    ("hybrid/clotho/late-os", "hybrid/clotho/baseline", 2.36),
    ("hybrid/audiocaps/late-cs", "hybrid/audiocaps/baseline", 3.69),
    ("hybrid/clotho/mid-fs", "hybrid/clotho/baseline", 6.77),
    ("hybrid/clotho/late-fs", "hybrid/clotho/baseline", 8.82),
    ("hybrid/clotho/large-late-os", "hybrid/clotho/large-baseline", 1.9),
    ("hybrid/audiocaps/large-late-cs", "hybrid/audiocaps/large-baseline", 3.15),
    ("hybrid/clotho/large-late-fs", "hybrid/clotho/large-baseline", 9.03),
    ("hybrid/clotho/both-late", "hybrid/clotho/both-baseline", 1.54),
    ("hybrid/audiocaps/both-late", "hybrid/audiocaps/both-baseline", 3.82),
]

#: Hybrid paper, Table II: ClothoV2 test results after training on the FreeSound subset of WavCaps
#: (captions generated from the same keywords used as metadata). The paper calls the second row "hybrid" with
#: "tags" as metadata; that it is the late-fusion model is an assumption (late fusion is its best model).
HYBRID_TABLE_II: list[dict] = [
    {"row": "hybrid/wavcaps-fs/baseline", "paper": "hybrid", "table": "II", "dataset": "clotho",
     "metadata": None, "fusion": None, "t2a_mAP@10": 30.35, "t2a_R@1": 18.74, "t2a_R@5": 45.87, "t2a_R@10": 59.61},
    {"row": "hybrid/wavcaps-fs/late-os", "paper": "hybrid", "table": "II", "dataset": "clotho",
     "metadata": "os", "fusion": "late", "t2a_mAP@10": 27.67, "t2a_R@1": 17.21, "t2a_R@5": 41.76,
     "t2a_R@10": 54.94},
]

#: Numbers quoted only in the hybrid paper's text (section V).
HYBRID_TEXT: dict[str, float] = {
    # V-E: late fusion with separate vs shared text encoder (ClothoV2 mAP@10)
    "clotho/late-os/separate-text-encoder/mAP@10": 28.05,
    "clotho/late-os/shared-text-encoder/mAP@10": 29.16,
    # V-A: an untrained model with pretrained encoders and FS metadata reaches R@1 8.96 on ClothoV2
    "clotho/fs/untrained/R@1": 8.96,
    # V-C: training on both datasets improves ClothoV2 mAP@10 by 3.14 (baseline) and 2.32 (hybrid)
    "clotho/both-datasets/baseline-gain": 3.14,
    "clotho/both-datasets/hybrid-gain": 2.32,
}

#: The section V-E numbers as rows (late fusion, OS keywords, ClothoV2 mAP@10 only), so findings and
#: :func:`compare` can name them like table rows. The shared-encoder model is Table I's late-os row.
HYBRID_TEXT_ROWS: list[dict] = [
    {"row": f"hybrid/clotho/late-os/{kind}-text-encoder", "paper": "hybrid", "table": "text V-E", "dataset": "clotho",
     "metadata": "os", "fusion": "late", "extra_data": False, "text_encoder": f"bert-base ({kind})",
     "t2a_mAP@10": HYBRID_TEXT[f"clotho/late-os/{kind}-text-encoder/mAP@10"], "map_bound": None}
    for kind in ("shared", "separate")
]

#: Hybrid paper, section IV: optimisation settings (all reproduced in ``experiments/hybrid``).
HYBRID_SETTINGS: dict = {
    "loss": "nt-xent", "batch_size": 32, "epochs": 25, "warmup_epochs": 1, "lr_max": 2e-5, "lr_min": 1e-7,
    "schedule": "warmup-cosine", "optimizer": "adam (pytorch defaults)", "spec_augment": True,
    "max_tokens": 32, "text_pooling": "cls", "seeds": 3,
    "clotho_clips": {"development": 3840, "validation": 1045, "evaluation": 1045},
    # IV-B: "a pretrained efficient CNN model ... (model ID: mn40_as_ext)"; "BERT (model ID: bert-base-uncased)";
    # text "transformed to lowercase and removing punctuation"; IV-C: "The modality encoders were jointly optimized"
    "audio_encoder": "efficientat-mn40", "text_encoder": "bert-base-uncased", "text_mode": "hybrid",
    "encoders_trained": True,
}

#: Settings ``experiments/hybrid`` needs that the hybrid paper does not state: our assumptions, not its settings.
HYBRID_ASSUMPTIONS: dict = {
    "select_metric": "mAP@10 (validation text-to-audio mAP@10, the main metric; ties keep the earlier epoch)",
    "num_heads": "8 attention heads in the transformer pooling",
    "num_layers": "2 transformer layers ('multiple transformer encoder layers')",
    "retrieval_dim": "256-d retrieval space",
    "nt_xent_temperature": "0.07 (Mei et al.'s value)",
    "table_2_fusion": "Table II's hybrid model is the late-fusion model",
    "wavcaps_clotho_overlap": "WavCaps FreeSound clips that are also in Clotho are excluded (aac-datasets' blacklist)",
}


def _m(dataset, fine_tune, loss, t2a, a2t, lr, batch_size=None):
    bs = batch_size if batch_size is not None else (32 if dataset == "audiocaps" else 24)
    tune = "finetune" if fine_tune else "frozen"
    row = f"mei/{dataset}/{tune}/{loss}" + (f"/bs{bs}" if batch_size is not None else "")
    out = {"row": row, "paper": "mei", "dataset": dataset, "fine_tune": fine_tune, "loss": loss, "lr": lr,
           "batch_size": bs}
    for name, (mean, std) in zip(("t2a_R@1", "t2a_R@5", "t2a_R@10"), t2a):
        out[name], out[name + "_std"] = mean, std
    for name, (mean, std) in zip(("a2t_R@1", "a2t_R@5", "a2t_R@10"), a2t):
        out[name], out[name + "_std"] = mean, std
    return out


_LR, _LR_STAR = 1e-4, 5e-5  # Table 1 caption: "* indicates the learning rate is 5e-5 otherwise 1e-4"

#: Mei et al., Table 1: mean and std over 3 seeds; text-to-audio and audio-to-text recalls.
MEI_TABLE_1: list[dict] = [
    _m("audiocaps", False, "triplet-sum", [(17.2, .5), (47.6, .2), (64.3, .1)], [(19.3, 1.5), (51.4, .8), (67.2, .7)], _LR),
    _m("audiocaps", False, "triplet-max", [(19.9, .2), (51.6, .3), (67.4, .3)], [(21.2, .9), (54.9, 1.4), (70.2, 1.0)], _LR),
    _m("audiocaps", False, "triplet-weighted", [(19.9, .2), (52.1, .7), (67.6, .6)], [(21.9, .8), (56.3, .3), (71.5, .4)], _LR),
    _m("audiocaps", False, "nt-xent", [(19.2, .4), (51.1, .2), (66.6, .2)], [(21.3, .5), (53.6, .7), (69.8, .5)], _LR),
    _m("audiocaps", True, "triplet-sum", [(32.2, .3), (68.2, .6), (81.6, .5)], [(36.1, 1.2), (69.2, 1.3), (81.4, 1.7)], _LR),
    _m("audiocaps", True, "triplet-max", [(32.7, .3), (68.3, .8), (81.6, .5)], [(38.7, 1.0), (70.6, .7), (82.2, .8)], _LR),
    _m("audiocaps", True, "triplet-weighted", [(32.6, .6), (67.7, .7), (81.0, .8)], [(39.6, 1.1), (72.0, 2.2), (82.2, 1.4)], _LR),
    _m("audiocaps", True, "nt-xent", [(33.9, .4), (69.7, .2), (82.6, .3)], [(39.4, 1.0), (72.0, 1.0), (83.9, .6)], _LR),
    _m("clotho", False, "triplet-sum", [(7.0, .2), (23.0, .3), (34.8, .5)], [(8.3, .3), (25.4, .8), (36.7, .5)], _LR),
    _m("clotho", False, "triplet-max", [(7.9, .2), (23.6, .4), (34.2, .5)], [(8.8, 1.0), (25.7, 1.0), (36.3, .8)], _LR),
    _m("clotho", False, "triplet-weighted", [(7.2, .2), (22.1, .3), (33.0, .3)], [(7.5, .4), (23.2, .1), (33.3, .3)], _LR_STAR),
    _m("clotho", False, "nt-xent", [(8.0, .2), (25.3, .1), (36.9, .3)], [(9.2, .7), (27.9, .5), (39.0, .7)], _LR),
    _m("clotho", True, "triplet-sum", [(14.2, .5), (36.6, .5), (49.3, .7)], [(16.1, .7), (37.5, 1.2), (50.7, 1.0)], _LR),
    _m("clotho", True, "triplet-max", [(14.2, .9), (36.5, 1.2), (49.0, .4)], [(15.8, .4), (36.4, 1.6), (49.6, 2.0)], _LR_STAR),
    _m("clotho", True, "triplet-weighted", [(14.2, .4), (36.6, .5), (49.7, .3)], [(16.9, .4), (38.1, .2), (51.4, .2)], _LR_STAR),
    _m("clotho", True, "nt-xent", [(14.4, .4), (36.6, .2), (49.9, .2)], [(16.2, .7), (37.5, .9), (50.2, .7)], _LR),
]

#: Mei et al., Table 2: AudioCaps, frozen encoders, batch size 32 vs 128 (the bs32 rows repeat Table 1).
MEI_TABLE_2: list[dict] = [
    _m("audiocaps", False, "triplet-sum", [(17.2, .5), (47.6, .2), (64.3, .1)], [(19.3, 1.5), (51.4, .8), (67.2, .7)], _LR, 32),
    _m("audiocaps", False, "triplet-max", [(19.9, .2), (51.6, .3), (67.4, .3)], [(21.2, .9), (54.9, 1.4), (70.2, 1.0)], _LR, 32),
    _m("audiocaps", False, "triplet-weighted", [(19.9, .2), (52.1, .7), (67.6, .6)], [(21.9, .8), (56.3, .3), (71.5, .4)], _LR, 32),
    _m("audiocaps", False, "nt-xent", [(19.2, .4), (51.1, .2), (66.6, .2)], [(21.3, .5), (53.6, .7), (69.8, .5)], _LR, 32),
    _m("audiocaps", False, "triplet-sum", [(17.0, .7), (47.2, .2), (62.7, .2)], [(20.0, 1.2), (49.9, 1.5), (66.7, 1.0)], _LR, 128),
    _m("audiocaps", False, "triplet-max", [(11.8, .3), (38.1, .9), (53.7, .5)], [(15.0, .5), (43.4, .6), (59.6, .7)], _LR, 128),
    _m("audiocaps", False, "triplet-weighted", [(10.1, .6), (31.7, .9), (46.5, .9)], [(10.7, .9), (33.4, 1.7), (48.7, 2.6)], _LR, 128),
    _m("audiocaps", False, "nt-xent", [(19.5, .1), (50.4, .3), (65.6, .8)], [(22.2, .7), (53.7, 2.0), (69.5, .4)], _LR, 128),
]

#: Mei et al., section 3.2: training settings (reproduced in ``experiments/mei``), made precise by their
#: released code (github.com/XinhaoMei/audio-text_retrieval: settings.yaml, trainer/trainer.py, models/):
#: selection on the three text-to-audio recalls with ties keeping the later epoch, gradient norm clipped at 2,
#: BERT dropout 0.2, captions lower-cased with only ``,.!?;:"`` replaced and not truncated, SpecAugment on.
MEI_SETTINGS: dict = {
    "epochs": 50, "optimizer": "adam", "lr": {"default": 1e-4, "starred": 5e-5}, "schedule": "step",
    "step_size": 20, "gamma": 0.1, "batch_size": {"audiocaps": 32, "clotho": 24}, "margin": 0.2,
    "temperature": 0.07, "embed_dim": 1024, "select_metric": "t2a_R-sum", "select_on_tie": "later",
    "grad_clip": 2.0, "text_dropout": 0.2, "text_mode": "mei", "spec_augment": True, "seeds": 3,
    "triplet_weighted": {"pos_coeffs": (0.5, -0.7, 0.2), "neg_coeffs": (0.03, -0.4, 0.9)},
    "mel": {"n_fft": 1024, "hop": 320, "n_mels": 64}, "audio_encoder": "panns-resnet38",
    "clotho_clips": {"development": 3839, "validation": 1045, "evaluation": 1045},
    "audiocaps_clips": {"train": 49274, "val": 494, "test": 957},
    # section 2: "The pre-trained BERT is employed as the text encoder" (bert-base-uncased in their code);
    # the learning rate "is decayed to 1/10 of itself every 20 epochs" from the first epoch: no warm-up
    "text_encoder": "bert-base-uncased", "warmup_epochs": 0,
}

#: What an epoch is in both papers (our reading: neither subsamples captions; Mei et al.'s released code iterates
#: over every audio-caption pair each epoch): ``TrainConfig.captions_per_clip=None``.
EVERY_CAPTION_EACH_EPOCH = None


def all_rows() -> list[dict]:
    """Every reported row of both papers (Table I, II, the V-E text numbers, Mei 1, Mei 2), as plain dicts."""
    return HYBRID_TABLE_I + HYBRID_TABLE_II + HYBRID_TEXT_ROWS + MEI_TABLE_1 + MEI_TABLE_2


def paper_row(row: str) -> dict:
    """The reported row with id ``row``; ``KeyError`` listing close ids when unknown."""
    for r in all_rows():
        if r["row"] == row:
            return r
    close = [r["row"] for r in all_rows() if row.split("/")[0] in r["row"]][:8]
    raise KeyError(f"unknown paper row {row!r}; e.g. {close}")


def paper_settings(row: str) -> dict | None:
    """The paper's training settings of reported row ``row`` (None for a row without them: related work), in
    the vocabulary of a run's ingredient report (:mod:`hybridlib.training.ingredients`), so a run can be checked
    against the paper and not only against its config:

    ``batch_size`` (the contrastive batch, over all processes), ``epochs``, ``lr`` (peak), ``lr_min``,
    ``schedule``, ``warmup_epochs``, ``step_size``/``gamma`` (step schedule), ``optimizer``, ``loss`` and
    ``loss_hyperparameters`` (those the paper states), ``max_tokens``, ``text_mode``, ``audio_encoder``,
    ``text_encoder``, ``encoders_trained``, ``pretrained``, ``spec_augment``, ``captions_per_clip``, ``dataset``
    (the benchmark), and per paper: ``fusion``, ``metadata`` (set of kinds) and ``shared_text_encoder`` (hybrid);
    ``grad_clip``, ``text_dropout``, ``retrieval_dim``, ``select_metric``, ``select_on_tie`` (Mei et al., their
    released code). Settings a paper does not state (e.g. the hybrid paper's NT-Xent temperature,
    :data:`HYBRID_ASSUMPTIONS`) are absent.
    """
    r = paper_row(row)
    common = {"optimizer": "adam", "pretrained": True, "captions_per_clip": EVERY_CAPTION_EACH_EPOCH,
              "dataset": r["dataset"]}
    if r["paper"] == "hybrid" and r["row"].startswith("hybrid/"):
        s = HYBRID_SETTINGS
        large = str(r.get("text_encoder", "")).startswith("bert-large")
        return {**common, "batch_size": s["batch_size"], "epochs": s["epochs"], "lr": s["lr_max"],
                "lr_min": s["lr_min"], "schedule": s["schedule"], "warmup_epochs": s["warmup_epochs"],
                "loss": s["loss"], "loss_hyperparameters": {}, "max_tokens": s["max_tokens"],
                "text_mode": s["text_mode"], "audio_encoder": s["audio_encoder"],
                "text_encoder": "bert-large-uncased" if large else s["text_encoder"],
                "encoders_trained": s["encoders_trained"], "spec_augment": s["spec_augment"],
                "fusion": r["fusion"] or "none",
                "metadata": set(r["metadata"].split("+")) if r["metadata"] else set(),
                "shared_text_encoder": "separate" not in r["row"]}
    if r["paper"] == "mei":
        s = MEI_SETTINGS
        loss = {"nt-xent": {"tau": s["temperature"]}, "triplet-weighted": {
            "margin": s["margin"], "pos_coeffs": list(s["triplet_weighted"]["pos_coeffs"]),
            "neg_coeffs": list(s["triplet_weighted"]["neg_coeffs"])}}.get(r["loss"], {"margin": s["margin"]})
        return {**common, "batch_size": r["batch_size"], "epochs": s["epochs"], "lr": r["lr"],
                "schedule": s["schedule"], "warmup_epochs": s["warmup_epochs"], "step_size": s["step_size"],
                "gamma": s["gamma"], "loss": r["loss"], "loss_hyperparameters": loss, "max_tokens": None,
                "text_mode": s["text_mode"], "audio_encoder": s["audio_encoder"], "text_encoder": s["text_encoder"],
                "encoders_trained": r["fine_tune"], "spec_augment": s["spec_augment"], "grad_clip": s["grad_clip"],
                "text_dropout": s["text_dropout"], "retrieval_dim": s["embed_dim"],
                "select_metric": s["select_metric"], "select_on_tie": s["select_on_tie"]}
    return None


def table(name: str):
    """One table as a pandas DataFrame: ``"hybrid-I"``, ``"hybrid-II"``, ``"hybrid-V-E"``, ``"mei-1"`` or ``"mei-2"``."""
    import pandas as pd

    tables = {"hybrid-I": HYBRID_TABLE_I, "hybrid-II": HYBRID_TABLE_II, "hybrid-V-E": HYBRID_TEXT_ROWS,
              "mei-1": MEI_TABLE_1, "mei-2": MEI_TABLE_2}
    if name not in tables:
        raise KeyError(f"unknown table {name!r}; choose from {sorted(tables)}")
    return pd.DataFrame(tables[name])


def compare(ours: dict[str, dict], metrics: tuple[str, ...] | None = None, reference: dict | None = None):
    """Put our results next to the papers' numbers.

    ``ours`` maps a paper row id to our metrics (flat keys like ``"t2a_mAP@10"``; a value may be a number or
    ``{"mean": m, "std": s}`` as written by :func:`hybridlib.runs.aggregate`). Returns a DataFrame with one
    line per (row, metric): ``paper``, ``ours``, ``ours_std``, ``diff`` (ours - paper, in points).
    Metrics the paper does not report for a row are skipped.

    ``reference`` maps ``ours``' keys to the paper row beside them instead (rows of a track of its own, e.g. the
    CPU track's config names; a column ``paper_row`` names it): a row mapped to None, or a metric the paper does
    not report, keeps our value with ``paper`` and ``diff`` None.
    """
    import pandas as pd

    lines = []
    for row_id, values in ours.items():
        ref_id = row_id if reference is None else reference.get(row_id)
        ref = paper_row(ref_id) if ref_id else {}
        wanted = metrics or tuple(k for k in (ref or values) if k.startswith(("t2a_", "a2t_"))
                                  and not k.endswith("_std"))
        for metric in wanted:
            if metric not in values or (metric not in ref and reference is None):
                continue
            mean, std = _mean_std(values[metric])
            paper_value = ref.get(metric)
            lines.append({"row": row_id, "metric": metric, "paper": paper_value, "paper_std": ref.get(metric + "_std"),
                          "ours": mean, "ours_std": std,
                          "diff": None if mean is None or paper_value is None else mean - paper_value}
                         | ({"paper_row": ref_id} if reference is not None else {}))
    columns = ["row", "metric", "paper", "paper_std", "ours", "ours_std", "diff"]
    return pd.DataFrame(lines, columns=columns + (["paper_row"] if reference is not None else []))


def by_paper_row(ours: dict[str, dict], reference: dict | None = None) -> dict[str, dict]:
    """``ours`` keyed by the paper rows ``reference`` maps its keys to (rows mapped to None left out), so findings
    (:func:`check_findings`) can be checked on a track of its own; ``ours`` itself when ``reference`` is None."""
    if reference is None:
        return ours
    return {reference[row]: values for row, values in ours.items() if reference.get(row)}


def _mean_std(value) -> tuple[float | None, float | None]:
    if isinstance(value, dict):
        return value.get("mean"), value.get("std")
    return (None if value is None else float(value)), None


@dataclass
class Finding:
    """A claim of a paper stated as "``better`` scores higher than ``worse`` on ``metric``".

    ``better``/``worse`` are paper row ids. With ``ours`` results keyed by the same ids, :meth:`check` says
    whether the direction holds in our numbers. ``tolerance`` (points) lets "at least as good" claims pass
    when the difference is within noise: holds when ours[better] - ours[worse] > -tolerance.
    """

    key: str
    paper: str
    claim: str
    better: str
    worse: str
    metric: str = "t2a_mAP@10"
    tolerance: float = 0.0
    section: str = ""
    extra: dict = field(default_factory=dict)

    def paper_gap(self) -> float | None:
        b, w = _reported(self.better, self.metric), _reported(self.worse, self.metric)
        return None if b is None or w is None else b - w

    def check(self, ours: dict[str, dict]) -> dict:
        """``{"key", "claim", "paper_gap", "paper_holds", "our_gap", "our_gap_std", "n_seeds", "our_gap_ci95",
        "holds", "verdict"}``; ``holds`` (the direction alone) is None when a row is missing from ``ours``.
        ``paper_holds`` says whether the paper's own numbers support the claim (Mei et al. say NT-Xent wins "in
        most cases", not in all).

        The spread: when both rows carry per-seed ``values`` of the same length (:func:`hybridlib.runs.aggregate`
        of runs trained with the same seeds, in seed order) the gap is paired seed by seed and ``our_gap_std`` is
        the sample std of the per-seed differences; otherwise it is ``sqrt(std_better² + std_worse²)``.
        ``our_gap_ci95`` and ``verdict`` come from :func:`gap_verdict`."""
        paper_gap = self.paper_gap()
        out = {"key": self.key, "paper": self.paper, "claim": self.claim, "metric": self.metric,
               "paper_gap": paper_gap, "paper_holds": None if paper_gap is None else bool(paper_gap > -self.tolerance),
               "our_gap": None, "our_gap_std": None, "n_seeds": None, "our_gap_ci95": None, "holds": None,
               "verdict": None}
        if self.better in ours and self.worse in ours and self.metric in ours[self.better] \
                and self.metric in ours[self.worse]:
            b, bs = _mean_std(ours[self.better][self.metric])
            w, ws = _mean_std(ours[self.worse][self.metric])
            gap = b - w
            out["our_gap"] = gap
            vb, vw = _values(ours[self.better][self.metric]), _values(ours[self.worse][self.metric])
            if vb and vw and len(vb) == len(vw):
                diffs = [x - y for x, y in zip(vb, vw)]
                n = len(diffs)
                mean = sum(diffs) / n
                out["our_gap_std"] = (sum((d - mean) ** 2 for d in diffs) / (n - 1)) ** 0.5 if n > 1 else 0.0
                out["n_seeds"] = n
            elif bs is not None and ws is not None:
                out["our_gap_std"] = (bs**2 + ws**2) ** 0.5
                out["n_seeds"] = min(_count(ours[self.better][self.metric]), _count(ours[self.worse][self.metric]))
            out["holds"] = bool(gap > -self.tolerance)
            out["our_gap_ci95"], out["verdict"] = gap_verdict(gap, out["our_gap_std"], out["n_seeds"],
                                                              self.tolerance)
        return out


#: The verdicts of :func:`gap_verdict`.
VERDICTS = ("holds", "does not hold", "within noise", "one seed: no spread")


def gap_verdict(gap: float, std: float | None, n: int | None, tolerance: float = 0.0,
                level: float = 0.95) -> tuple[float | None, str]:
    """``(half-width, verdict)`` of a claim "the gap is above ``-tolerance``" given our mean gap, its sample std
    over ``n`` seeds (paired differences) and Student's t interval of the mean at ``level``:

    * ``"holds"``: the whole interval lies above ``-tolerance`` (for a plain "A beats B": above zero);
    * ``"does not hold"``: the whole interval lies below ``-tolerance`` (B is reliably better);
    * ``"within noise"``: the interval contains ``-tolerance``: these seeds cannot tell;
    * ``"one seed: no spread"`` (half-width None): fewer than two seeds, no interval to judge by.

    An assumption of this repository, not of the papers (which report means of three runs without a test):
    seeds are treated as independent draws, a paired t interval on their differences.
    """
    if n is None or n < 2 or std is None:
        return None, VERDICTS[3]
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / n ** 0.5
    if gap - half > -tolerance:
        return half, VERDICTS[0]
    if gap + half < -tolerance:
        return half, VERDICTS[1]
    return half, VERDICTS[2]


def _values(value) -> list[float] | None:
    return list(value["values"]) if isinstance(value, dict) and value.get("values") else None


def _count(value) -> int:
    if isinstance(value, dict):
        return int(value.get("n") or len(value.get("values") or []) or 1)
    return 1


def _reported(row: str, metric: str) -> float | None:
    try:
        return paper_row(row).get(metric)
    except KeyError:
        return None


def _fs(*findings: Finding) -> list[Finding]:
    return list(findings)


#: The hybrid paper's findings (section V) as directional claims.
HYBRID_FINDINGS: list[Finding] = _fs(
    Finding("late>baseline", "hybrid", "hybrid late fusion (OS tags) beats the content-only baseline",
            "hybrid/clotho/late-os", "hybrid/clotho/baseline", section="V-A"),
    Finding("mid>baseline", "hybrid", "hybrid mid-level fusion (OS tags) beats the content-only baseline",
            "hybrid/clotho/mid-os", "hybrid/clotho/baseline", section="V-A"),
    Finding("late>=mid", "hybrid", "late fusion ranks at least as well as mid-level fusion",
            "hybrid/clotho/late-os", "hybrid/clotho/mid-os", section="V-B"),
    Finding("fs>os", "hybrid", "full-sentence descriptions help more than keywords (late fusion)",
            "hybrid/clotho/late-fs", "hybrid/clotho/late-os", section="V-A"),
    Finding("late-cs>baseline", "hybrid", "late fusion with closed-set tags beats the baseline on AudioCaps",
            "hybrid/audiocaps/late-cs", "hybrid/audiocaps/baseline", section="V-A"),
    Finding("shared>separate", "hybrid", "sharing the text encoder for queries and metadata helps",
            "hybrid/clotho/late-os/shared-text-encoder", "hybrid/clotho/late-os/separate-text-encoder",
            section="V-E"),
    Finding("generated-captions:content>hybrid", "hybrid",
            "trained on captions generated from the keywords, the content-only model beats the hybrid",
            "hybrid/wavcaps-fs/baseline", "hybrid/wavcaps-fs/late-os", section="V-D (Table II)"),
)


def _mei_loss_findings() -> list[Finding]:
    out = []
    for dataset in ("audiocaps", "clotho"):
        for tune in ("frozen", "finetune"):
            for loss in ("triplet-sum", "triplet-max", "triplet-weighted"):
                out.append(Finding(
                    f"nt-xent>={loss}/{dataset}/{tune}", "mei",
                    f"NT-Xent is at least as good as {loss} ({dataset}, {tune} encoders, text-to-audio R@1)",
                    f"mei/{dataset}/{tune}/nt-xent", f"mei/{dataset}/{tune}/{loss}", metric="t2a_R@1",
                    section="4.2"))
        for loss in ("triplet-sum", "triplet-max", "triplet-weighted", "nt-xent"):
            out.append(Finding(
                f"finetune>frozen/{dataset}/{loss}", "mei", f"fine-tuning the encoders beats freezing them ({loss})",
                f"mei/{dataset}/finetune/{loss}", f"mei/{dataset}/frozen/{loss}", metric="t2a_R@1", section="4.1"))
    for loss, stable in (("triplet-sum", True), ("nt-xent", True), ("triplet-max", False),
                         ("triplet-weighted", False)):
        if stable:  # "stable with respect to batch size": bs128 within 1.5 points of bs32
            out.append(Finding(f"bs128~bs32/{loss}", "mei", f"{loss} is stable when the batch grows from 32 to 128",
                               f"mei/audiocaps/frozen/{loss}/bs128", f"mei/audiocaps/frozen/{loss}/bs32",
                               metric="t2a_R@1", tolerance=1.5, section="4.2"))
        else:
            out.append(Finding(f"bs32>bs128/{loss}", "mei", f"{loss} degrades when the batch grows from 32 to 128",
                               f"mei/audiocaps/frozen/{loss}/bs32", f"mei/audiocaps/frozen/{loss}/bs128",
                               metric="t2a_R@1", section="4.2"))
    return out


#: Mei et al.'s findings (section 4) as directional claims.
MEI_FINDINGS: list[Finding] = _mei_loss_findings()


#: The seven findings notebook 07 puts to the test, each answered by one or more :class:`Finding` keys (all must
#: hold for the finding to hold; see :func:`headline_findings`). Mei et al.'s loss comparison is answered on the
#: frozen-encoder Clotho rows (the only ones the teaching runs stand in for at their batch size).
HEADLINE_FINDINGS: list[dict] = [
    {"finding": "the hybrid model beats the content-only baseline", "paper": "hybrid", "section": "V-A",
     "keys": ("late>baseline", "mid>baseline")},
    {"finding": "full-sentence descriptions help more than keywords", "paper": "hybrid", "section": "V-A",
     "keys": ("fs>os",)},
    {"finding": "late fusion is at least as good as mid-level fusion", "paper": "hybrid", "section": "V-B",
     "keys": ("late>=mid",)},
    {"finding": "a shared text encoder beats separate ones", "paper": "hybrid", "section": "V-E",
     "keys": ("shared>separate",)},
    {"finding": "captions generated from metadata hurt the hybrid model", "paper": "hybrid",
     "section": "V-D (Table II)", "keys": ("generated-captions:content>hybrid",)},
    {"finding": "NT-Xent is stable when the batch grows", "paper": "mei", "section": "4.2",
     "keys": ("bs128~bs32/nt-xent",)},
    {"finding": "NT-Xent is at least as good as the triplet losses", "paper": "mei", "section": "4.2",
     "keys": tuple(f"nt-xent>={loss}/clotho/frozen" for loss in ("triplet-sum", "triplet-max", "triplet-weighted"))},
]


def combine_verdicts(verdicts: list[str]) -> str:
    """One verdict for a finding made of several comparisons: "does not hold" if any part does not hold, "holds"
    if every part holds, "one seed: no spread" if no part has a spread, else "within noise"."""
    if not verdicts:
        raise ValueError("no verdicts to combine")
    if VERDICTS[1] in verdicts:
        return VERDICTS[1]
    if all(v == VERDICTS[0] for v in verdicts):
        return VERDICTS[0]
    if all(v == VERDICTS[3] for v in verdicts):
        return VERDICTS[3]
    return VERDICTS[2]


def headline_findings(checked, headlines: list[dict] | None = None):
    """The :data:`HEADLINE_FINDINGS` answered from ``checked`` (rows of :func:`check_findings`, any number of
    frames concatenated): a DataFrame with one line per finding: ``finding``, ``paper``, ``section``, ``metric``,
    ``parts`` (the checked rows it rests on, as dicts), ``n_seeds``, a readable ``paper_gap`` / ``our_gap``
    (``"+6.55 ± 1.13"``; one entry per part) and ``verdict`` (:func:`combine_verdicts`; ``"not run"`` when none of
    its comparisons is in ``checked``)."""
    import pandas as pd

    def native(v):  # pandas turns a missing float into NaN: back to None
        return None if isinstance(v, float) and v != v else v

    by_key = {r["key"]: {k: native(v) for k, v in r.items()} for r in checked.to_dict(orient="records")}
    lines = []
    for h in headlines or HEADLINE_FINDINGS:
        parts = [by_key[k] for k in h["keys"] if k in by_key and by_key[k].get("verdict")]
        def fmt(r):
            spread = "" if r["our_gap_std"] is None or r["n_seeds"] in (None, 1) else f" ± {r['our_gap_std']:.2f}"
            return f"{r['our_gap']:+.2f}{spread}"
        lines.append({
            "finding": h["finding"], "paper": h["paper"], "section": h["section"],
            "metric": parts[0]["metric"] if parts else None, "parts": parts,
            "n_seeds": min((r["n_seeds"] or 1) for r in parts) if parts else 0,
            "paper_gap": "; ".join("n/a" if r["paper_gap"] is None else f"{r['paper_gap']:+.2f}" for r in parts),
            "our_gap": "; ".join(fmt(r) for r in parts),
            "ci95": "; ".join("-" if r["our_gap_ci95"] is None else f"±{r['our_gap_ci95']:.2f}" for r in parts),
            "verdict": combine_verdicts([r["verdict"] for r in parts]) if parts else "not run",
        })
    return pd.DataFrame(lines)


def check_findings(ours: dict[str, dict], findings: list[Finding] | None = None, only_available: bool = True):
    """Evaluate findings on our results; a DataFrame with paper gap, our gap (its spread, seeds and 95% interval),
    ``holds`` (the direction) and ``verdict`` (:meth:`Finding.check`)."""
    import pandas as pd

    findings = HYBRID_FINDINGS + MEI_FINDINGS if findings is None else findings
    rows = [f.check(ours) for f in findings]
    if only_available:
        rows = [r for r in rows if r["holds"] is not None]
    return pd.DataFrame(rows, columns=["key", "paper", "claim", "metric", "paper_gap", "paper_holds", "our_gap",
                                       "our_gap_std", "n_seeds", "our_gap_ci95", "holds", "verdict"])


def side_by_side(ours: dict[str, dict], metrics: tuple[str, ...] = ("t2a_mAP@10", "t2a_R@1", "t2a_R@10"),
                 findings: list[Finding] | None = None, file=None, digits: int = 2, reference: dict | None = None,
                 label: str | None = None, marker: str = "") -> str:
    """Print (and return) our results next to the papers' numbers, then each finding: does our gap point the
    paper's way (direction), and does it hold beyond seed noise (verdict, :func:`gap_verdict`).

    ``reference``: see :func:`compare` (the paper row is printed after ours, ``-`` where there is none);
    ``label``: a line printed above both tables saying what our numbers are (e.g. not the papers' setting, or the
    rehearsal's random-weight stand-ins); ``marker``: appended to every row and finding line, so a line copied
    alone still says it."""
    import sys

    def num(value, fmt):
        return "-" if value is None or value != value else format(value, fmt)

    cmp = compare(ours, metrics, reference=reference)
    tail = f"  {marker}" if marker else ""
    lines = ([label] if label else []) + [
        "row / metric                                   paper      ours (± std)     diff [pp]"
        + ("   paper row" if reference is not None else "")]
    for r in cmp.itertuples(index=False):
        std = f" ± {r.ours_std:.{digits}f}" if r.ours_std is not None and r.ours_std == r.ours_std else ""
        beside = "" if reference is None else f"   {r.paper_row if isinstance(r.paper_row, str) else '-'}"
        lines.append(f"{r.row + ' ' + r.metric:<46} {num(r.paper, f'.{digits}f'):>6}   {r.ours:>7.{digits}f}{std:<9}"
                     f" {num(r.diff, f'+.{digits}f'):>8}{beside}{tail}")
    found = check_findings(by_paper_row(ours, reference), findings)
    if len(found):
        lines.append("")
        lines.append("finding                                               paper gap   our gap   direction  verdict")
        for r in found.itertuples(index=False):
            paper_gap = "n/a" if r.paper_gap is None else f"{r.paper_gap:+.{digits}f}"
            lines.append(f"{r.claim[:52]:<53} {paper_gap:>9}  {r.our_gap:>+8.{digits}f}   "
                         f"{'yes' if r.holds else 'NO':<9}  {r.verdict}{tail}")
    text = "\n".join(lines)
    print(text, file=file or sys.stdout)
    return text
