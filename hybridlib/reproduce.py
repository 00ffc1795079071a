"""Reproducing the papers' tables: which config gives which row, one command per table, and the rehearsal.

* **Tables** (:data:`TABLES`): ``hybrid-table-1``, ``hybrid-table-2`` (WavCaps FreeSound), ``hybrid-text``
  (section V-E: separate vs shared text encoder), ``mei-table-1``, ``mei-table-2``, and ``all`` (every config
  in ``experiments/hybrid`` and ``experiments/mei``). Each row of a table is reproduced by the config whose
  ``paper_row`` names it (Mei Table 2's batch-32 rows are Table 1's frozen AudioCaps runs, trained once).
  ``clotho-cpu`` is a track of its own: the configs of ``experiments/clotho-cpu`` (real Clotho, the bundled frozen
  encoders, a CPU), rows named by config, every output labelled :data:`FROZEN_ENCODER_SETTING`, the paper's row
  beside ours for reference.
* **One command per table**: ``python -m hybridlib reproduce hybrid-table-1 --seeds 0 1 2`` trains every row
  and seed in turn into ``runs/reproduce/<config name>/seed-<n>/`` (:func:`reproduce`): a seed whose metrics
  file exists (same config) is skipped, an interrupted one (``checkpoint.pt``) resumed, a finished seed's
  checkpoints are deleted unless ``keep_checkpoints`` (its ``best/`` model, log, ingredient report and
  metrics stay). Rows can be split across machines (``--rows``, ``--shard i/n``); ``--report`` only collects.
  At the end our numbers are printed beside the paper's with the gaps (:func:`hybridlib.paper.side_by_side`)
  and saved as ``<out>/<table>-comparison.csv`` / ``.json``.
* **Rehearsal** (:func:`make_rehearsal`, ``python -m hybridlib make-rehearsal --out DIR``): the miniature
  datasets of :mod:`hybridlib.data.rehearsal` plus each row's architecture at random initialisation, in the
  formats a user's files have (PANNs/EfficientAT official checkpoint files, bert-base/large model folders
  from their published configurations with the bundled uncased WordPiece tokenizer). With ``--rehearsal DIR``
  every row runs on it with :func:`rehearsal_overrides` (what each row needs changed, and why: nothing that
  defines the row). Its numbers are labelled wherever they appear (:data:`REHEARSAL_LABEL`), and its overrides
  are reported as the rehearsal's known deviations from the paper, apart from problems.
* **Ingredients**: after each seed trains, its ``ingredients.json`` is checked against the row's config and the
  paper's settings (:func:`hybridlib.training.ingredients.ingredient_problems`); problems are printed per row
  and seed, and saved with the rehearsal's deviations under ``ingredients`` in the comparison JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from hybridlib import paper, runs
from hybridlib.config import TrainConfig, experiments_dir, load_config
from hybridlib.util.errors import HybridlibError, UserError

PAPER_CONFIG_DIRS = ("hybrid", "mei")
TABLES: dict[str, dict] = {
    "hybrid-table-1": {"title": "Primus & Widmer, Table I (ClothoV2 and AudioCaps)",
                       "rows": [r["row"] for r in paper.HYBRID_TABLE_I if r["row"].startswith("hybrid/")]},
    "hybrid-table-2": {"title": "Primus & Widmer, Table II (trained on WavCaps FreeSound, tested on ClothoV2)",
                       "rows": [r["row"] for r in paper.HYBRID_TABLE_II]},
    "hybrid-text": {"title": "Primus & Widmer, section V-E (separate vs shared text encoder)",
                    "rows": [r["row"] for r in paper.HYBRID_TEXT_ROWS if "separate" in r["row"]] + ["hybrid/clotho/late-os"]},
    "mei-table-1": {"title": "Mei et al., Table 1", "rows": [r["row"] for r in paper.MEI_TABLE_1]},
    "mei-table-2": {"title": "Mei et al., Table 2 (AudioCaps, frozen encoders, batch 32 vs 128)",
                    "rows": [r["row"] for r in paper.MEI_TABLE_2]},
}
# A track of its own (configs in experiments/<config_dir>, rows named by config): real ClothoV2.1 on a CPU with the
# bundled frozen encoders. Its ``setting`` labels every output (console, CSV, JSON): not the papers' setting.
FROZEN_ENCODER_SETTING = ("frozen-encoder numbers: bundled sfx-cnn + MiniLM frozen, cached features, CPU settings "
                          "(experiments/clotho-cpu), not the papers' setting (EfficientAT + BERT fine-tuned on a GPU); "
                          "paper values for reference only")
TABLES["clotho-cpu"] = {"title": "Real ClothoV2.1 on a CPU with the bundled frozen encoders",
                        "config_dir": "clotho-cpu", "setting": FROZEN_ENCODER_SETTING,
                        "rows": ["clotho-cpu-baseline", "clotho-cpu-metadata-only", "clotho-cpu-late-os",
                                 "clotho-cpu-mid-os", "clotho-cpu-late-fs"],
                        # the paper row printed beside each row, for reference: the configs have no paper_row, as
                        # they reproduce none (the ingredient check holds paper rows to the paper's settings)
                        "reference": {"clotho-cpu-baseline": "hybrid/clotho/baseline",
                                      "clotho-cpu-late-os": "hybrid/clotho/late-os",
                                      "clotho-cpu-mid-os": "hybrid/clotho/mid-os",
                                      "clotho-cpu-late-fs": "hybrid/clotho/late-fs"}}
ALL = "all"
COMPARE_METRICS = ("t2a_mAP@10", "t2a_R@1", "t2a_R@5", "t2a_R@10", "a2t_R@1", "a2t_R@5", "a2t_R@10")

# What a row needs changed to run on the rehearsal data here (CPU), and why; nothing that defines the row
# (architecture, frozen/trained encoders, metadata, fusion, loss, optimiser, schedule type, selection) changes.
REHEARSAL_OVERRIDES: dict[str, str] = {
    "data_root": "the rehearsal folder (miniature datasets in the official layouts)",
    "model.audio_checkpoint": "the backbone's architecture at random initialisation in its official file format",
    "model.text_encoder": "a local folder with bert-base/large's published configuration at random initialisation",
    "epochs": "2: two optimisation steps (one per epoch), so an interruption and resume cross an epoch boundary",
    "captions_per_clip": "1: one caption per clip per epoch, so an epoch is one batch of at most 11 pairs (CPU)",
    "device": "cpu",
    "num_threads": "1 (one process per core)",
}
#: How rehearsal numbers are labelled wherever they appear: a header line above the console comparison (and the
#: ``label`` of the comparison JSON), a marker on every row and finding line, and the ``rehearsal`` column of the
#: CSV and of the JSON's comparison and finding records.
REHEARSAL_LABEL = ("REHEARSAL - not a reproduction: random-weight stand-ins trained for a few steps on miniature "
                   "data; the numbers test the pipeline and say nothing about the papers' results")
REHEARSAL_MARKER = "[rehearsal: stand-ins]"


# ---------------------------------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class Entry:
    """One row of a table, the config reproducing it and the config's ``name`` (its run folder)."""

    row: str
    config: Path
    name: str


def paper_configs() -> list[Path]:
    """Every runnable config of ``experiments/hybrid`` and ``experiments/mei`` (sorted)."""
    return sorted(p for d in PAPER_CONFIG_DIRS for p in (experiments_dir() / d).glob("[!_]*.yaml"))


def config_for_rows() -> dict[str, Path]:
    """``paper row id -> config`` over :func:`paper_configs` (Mei Table 2's ``/bs32`` rows map to Table 1's)."""
    index: dict[str, Path] = {}
    for path in paper_configs():
        row = load_config(path).paper_row
        if row:
            if row in index:
                raise UserError(f"paper row {row!r} is claimed by two configs: {index[row]} and {path}")
            index[row] = path
    for r in paper.MEI_TABLE_2:
        if r["row"].endswith("/bs32") and r["row"].removesuffix("/bs32") in index:
            index[r["row"]] = index[r["row"].removesuffix("/bs32")]
    return index


def table_entries(table: str) -> list[Entry]:
    """The rows of ``table`` (:data:`TABLES` or ``all``) with their configs, in the table's order."""
    if table == ALL:
        return [Entry(cfg.paper_row or cfg.name, p, cfg.name) for p in paper_configs() for cfg in [load_config(p)]]
    if table not in TABLES:
        raise UserError(f"unknown table {table!r}; choose from {sorted(TABLES) + [ALL]}")
    if "config_dir" in TABLES[table]:  # a track of its own: its rows are the config names in its folder
        found = {cfg.name: p for p in sorted((experiments_dir() / TABLES[table]["config_dir"]).glob("[!_]*.yaml"))
                 for cfg in [load_config(p)]}
        missing = [r for r in TABLES[table]["rows"] if r not in found]
        if missing:
            raise UserError(f"no config named {missing} in experiments/{TABLES[table]['config_dir']}")
        return [Entry(name, found[name], name) for name in TABLES[table]["rows"]]
    index = config_for_rows()
    missing = [r for r in TABLES[table]["rows"] if r not in index]
    if missing:
        raise UserError(f"no config reproduces {missing} (experiments/{'|'.join(PAPER_CONFIG_DIRS)})")
    return [Entry(r, index[r], load_config(index[r]).name) for r in TABLES[table]["rows"]]


def select_entries(entries: list[Entry], rows: list[str] | None = None, shard: str | None = None) -> list[Entry]:
    """The entries named by ``rows`` (paper row ids or config names), then the ``shard`` ``"i/n"``: every n-th
    entry starting at the i-th (1-based), so n machines given 1/n ... n/n cover a table exactly once."""
    if rows:
        unknown = [r for r in rows if not any(r in (e.row, e.name) for e in entries)]
        if unknown:
            raise UserError(f"rows {unknown} are not in this table; it has {[e.name for e in entries]}")
        entries = [e for e in entries if e.row in rows or e.name in rows]
    if shard:
        try:
            i, n = (int(x) for x in shard.split("/"))
        except ValueError:
            raise UserError(f"--shard expects i/n (e.g. 1/2), got {shard!r}") from None
        if not 1 <= i <= n:
            raise UserError(f"--shard {shard}: i must lie in 1..n")
        entries = entries[i - 1::n]
    return entries


# ---------------------------------------------------------------------------------------------------- rehearsal
def make_rehearsal(out: str | Path, shared: str | Path | None = None, realistic_lengths: bool = False,
                   seed: int = 0, sizes: dict | None = None) -> dict:
    """Miniature datasets (:func:`hybridlib.data.rehearsal.make_rehearsal_data`; ``sizes`` overrides its clip
    counts) and random-weight stand-ins of every architecture the paper configs use, below ``out``; returns (and
    updates) the manifest."""
    from hybridlib.data.rehearsal import MANIFEST, make_rehearsal_data
    from hybridlib.models.audio import write_random_weights
    from hybridlib.models.text import BERT_CONFIGS, write_random_text_model

    out = Path(out)
    manifest = make_rehearsal_data(out, shared=shared, sizes=sizes, realistic_lengths=realistic_lengths)
    models = [load_config(p).model_config() for p in paper_configs()]
    weights, texts = {}, {}
    for backbone in sorted({m.audio_backbone for m in models if m.uses_audio}):
        weights[backbone] = str(write_random_weights(backbone, out / "weights", seed=seed))
    for name in sorted({m.text_encoder for m in models if m.text_encoder in BERT_CONFIGS}):
        texts[name] = str(write_random_text_model(name, out / "text-models" / name, seed=seed))
    manifest.update(weights=weights, text_models=texts)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def rehearsal_overrides(cfg: TrainConfig, root: str | Path) -> dict:
    """The overrides that run ``cfg`` on the rehearsal at ``root`` (see :data:`REHEARSAL_OVERRIDES`)."""
    from hybridlib.data.rehearsal import read_manifest

    manifest = read_manifest(root)
    model = cfg.model_config()
    model_over = {}
    if model.uses_audio and model.audio_backbone in manifest.get("weights", {}):
        model_over["audio_checkpoint"] = manifest["weights"][model.audio_backbone]
    if model.text_encoder in manifest.get("text_models", {}):
        model_over["text_encoder"] = manifest["text_models"][model.text_encoder]
    return {"data_root": str(Path(root).resolve()), "epochs": 2, "captions_per_clip": 1, "device": "cpu",
            "num_threads": 1, "model": model_over}


def deliberate_settings(cfg: TrainConfig, root: str | Path) -> dict:
    """:func:`rehearsal_overrides` flattened to ``{config field: value}`` (``model.*`` dotted): the settings in
    which a rehearsal run deliberately differs from the paper
    (:func:`hybridlib.training.ingredients.deliberate_deviations`)."""
    over = rehearsal_overrides(cfg, root)
    return {**{k: v for k, v in over.items() if k != "model"}, **{f"model.{k}": v for k, v in over["model"].items()}}


def row_config(entry: Entry, overrides: list[str] | dict | None = None, rehearsal: str | Path | None = None
               ) -> TrainConfig:
    """The config of ``entry`` with the rehearsal's overrides (if any), then the user's ``overrides``."""
    from hybridlib.config import parse_overrides

    base = rehearsal_overrides(load_config(entry.config), rehearsal) if rehearsal is not None else {}
    extra = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    return load_config(entry.config, overrides=base, **extra)


# ---------------------------------------------------------------------------------------------------- running
@dataclass
class RowStatus:
    """What :func:`reproduce` did with one row: per seed ``finished`` / ``skipped`` / ``stopped`` / an error."""

    row: str
    name: str
    out_dir: Path
    seeds: dict[int, str] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    problems: dict[int, list[str]] = field(default_factory=dict)  # config or paper ingredients that did not hold
    deviations: dict[int, list[str]] = field(default_factory=dict)  # the rehearsal's known deviations from the paper


def seed_state(cfg: TrainConfig, seed_dir: Path) -> str:
    """``finished`` (metrics of this config there), ``interrupted`` (a checkpoint), or ``new``."""
    split = cfg.splits()[2]
    if runs.metrics_path(seed_dir, split).is_file() and (seed_dir / runs.CONFIG).is_file():
        if not runs.same_experiment(cfg, runs.read_config(seed_dir)):
            raise runs.ConfigChanged(f"{seed_dir} holds a finished run of another config; train this one into "
                                     "another --out folder")
        return "finished"
    if (seed_dir / runs.CHECKPOINT).is_file() or (seed_dir / runs.PREVIOUS_CHECKPOINT).is_file():
        return "interrupted"
    return "new"


def remove_checkpoints(seed_dir: Path) -> None:
    """Delete a finished seed's ``checkpoint.pt`` / ``checkpoint.prev.pt`` (``best/`` and metrics stay)."""
    for name in (runs.CHECKPOINT, runs.PREVIOUS_CHECKPOINT):
        (Path(seed_dir) / name).unlink(missing_ok=True)


def reproduce(table: str, seeds: list[int] | None = None, out: str | Path | None = None,
              rows: list[str] | None = None, shard: str | None = None, overrides: list[str] | dict | None = None,
              rehearsal: str | Path | None = None, keep_checkpoints: bool = False, report_only: bool = False,
              progress: bool = True, show: bool = True, file=None) -> dict:
    """Train every row of ``table`` (after ``rows``/``shard``) for every seed, then compare with the paper.

    ``seeds``: default each config's ``seeds``; ``progress``: training progress; ``show``: print the comparison
    (to ``file``, default stdout). Every row is checked first (:func:`hybridlib.training.preflight.preflight`:
    its config with ``overrides``, device, datasets), so a row that cannot run here stops the command before any
    row trains (a :class:`~hybridlib.util.errors.UserError`). Returns ``{"rows": [RowStatus], "comparison": DataFrame,
    "text": printed comparison, "files": [written files]}``. A row that fails is reported and the others go
    on; :class:`HybridlibError` is raised at the end when any failed.
    """
    from hybridlib.paths import runs_dir
    from hybridlib.training import train
    from hybridlib.training.ingredients import deliberate_deviations, ingredient_problems
    from hybridlib.util.files import DiskFull
    from hybridlib.util.locks import FolderLocked
    from hybridlib.util.values import SEED_RULE, value_problem

    out = Path(out) if out is not None else runs_dir() / "reproduce"
    for seed in seeds or ():  # before any folder: a seed no generator takes must not leave seed-<n>/ behind
        problem = value_problem(seed, "int", **SEED_RULE)
        if problem:
            raise UserError(f"--seeds: {seed} {problem}")
    entries = select_entries(table_entries(table), rows, shard)
    # every row's inputs before the first one trains: a bad --set, a missing dataset, a GPU row on a CPU
    configs = {entry.name: row_config(entry, overrides, rehearsal) for entry in entries}
    if not report_only:
        from hybridlib.training.preflight import preflight

        for entry in entries:
            preflight(configs[entry.name], f"{entry.row} ({entry.config})")
    statuses: list[RowStatus] = []
    for entry in entries:
        cfg = configs[entry.name]
        row_dir = out / cfg.name
        status = RowStatus(entry.row, cfg.name, row_dir)
        statuses.append(status)
        for seed in (seeds if seeds is not None else cfg.seeds):
            seed_cfg = cfg.replace(seed=seed)
            seed_dir = runs.seed_dir(row_dir, seed)
            try:
                state = seed_state(seed_cfg, seed_dir)
                if state == "finished" or report_only:
                    status.seeds[seed] = "skipped" if state == "finished" else state
                    continue
                if progress:
                    print(f"[reproduce] {entry.row} ({cfg.name}) seed {seed}: {state}", file=file, flush=True)
                result = train(seed_cfg, seed_dir, resume=state == "interrupted", progress=progress)
                status.seeds[seed] = "finished" if result.finished else "stopped"
                report = runs.read_ingredients(seed_dir)
                deliberate = deliberate_settings(load_config(entry.config), rehearsal) if rehearsal else None
                problems = ingredient_problems(seed_cfg, report, deliberate=deliberate)
                deviations = deliberate_deviations(seed_cfg, report, deliberate)
                if problems:
                    status.problems[seed] = problems
                    print(f"[reproduce] {entry.row} seed {seed}: ingredients differ from the config or the paper: "
                          + "; ".join(problems), file=file, flush=True)
                if deviations:
                    status.deviations[seed] = deviations
                    print(f"[reproduce] {entry.row} seed {seed}: the rehearsal's known deviations from the "
                          "paper: " + "; ".join(deviations), file=file, flush=True)
                if result.finished and not keep_checkpoints:
                    remove_checkpoints(seed_dir)
            except (DiskFull, FolderLocked):
                raise  # no space, or another process writes this row: the next rows would not fare better
            except HybridlibError as exc:
                status.errors[seed] = f"{type(exc).__name__}: {exc}"
                status.seeds[seed] = "failed"
                print(f"[reproduce] {entry.row} seed {seed} failed: {exc}", file=file, flush=True)
    result = collect(table, entries, out, seeds, overrides, rehearsal, file=file, show=show)
    result["rows"] = statuses
    failed = {s.name: s.errors for s in statuses if s.errors}
    if failed:
        raise HybridlibError(f"{len(failed)} row(s) failed: " + "; ".join(
            f"{name} seed {seed}: {msg}" for name, errs in failed.items() for seed, msg in errs.items()))
    return result


def collect(table: str, entries: list[Entry], out: Path, seeds=None, overrides=None, rehearsal=None, file=None,
            show: bool = True) -> dict:
    """Aggregate the finished seeds of each row and compare with the paper; write the comparison files."""
    from hybridlib.training.ingredients import deliberate_deviations, ingredient_problems

    ours: dict[str, dict] = {}
    reference: dict[str, str | None] = {}  # our row -> the paper row beside it
    checks: dict[str, dict] = {}  # per row and seed: problems and the rehearsal's known deviations
    for entry in entries:
        cfg = row_config(entry, overrides, rehearsal)
        deliberate = deliberate_settings(load_config(entry.config), rehearsal) if rehearsal else None
        for seed in (seeds if seeds is not None else cfg.seeds):
            seed_dir = runs.seed_dir(out / cfg.name, seed)
            if (seed_dir / runs.INGREDIENTS).is_file():
                report, seed_cfg = runs.read_ingredients(seed_dir), cfg.replace(seed=seed)
                checks.setdefault(entry.row, {})[str(seed)] = {
                    "problems": ingredient_problems(seed_cfg, report, deliberate=deliberate),
                    "rehearsal_deviations": deliberate_deviations(seed_cfg, report, deliberate)}
        try:
            summary = runs.write_run_metrics(out / cfg.name, cfg.splits()[2], cfg=cfg, seeds=seeds)
        except FileNotFoundError:
            continue
        ours[entry.row] = {k: v for k, v in summary["aggregate"].items()}
        reference[entry.row] = TABLES.get(table, {}).get("reference", {}).get(entry.row, cfg.paper_row)
    if "hybrid/clotho/late-os" in ours:  # V-E's shared-encoder model is Table I's late-os row (paper.HYBRID_TEXT_ROWS)
        ours.setdefault("hybrid/clotho/late-os/shared-text-encoder", ours["hybrid/clotho/late-os"])
    known = {r["row"] for r in paper.all_rows()}
    setting = TABLES.get(table, {}).get("setting")
    if setting:  # a track of its own: every row, the paper's row it corresponds to (if any) beside it
        comparable, refs = ours, reference
    else:
        comparable, refs = {row: values for row, values in ours.items() if row in known}, None
    # what the numbers are, above the tables, on every line and in both files
    label = " ".join(part for part in (REHEARSAL_LABEL if rehearsal else None, setting) if part) or None
    marker = REHEARSAL_MARKER if rehearsal else ""
    cmp = paper.compare(comparable, COMPARE_METRICS, reference=refs)
    text = paper.side_by_side(comparable, metrics=("t2a_mAP@10", "t2a_R@1", "t2a_R@10"), file=file,
                              reference=refs, label=label, marker=marker) if (comparable and show) else ""
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"{table}-comparison.csv"
    json_path = out / f"{table}-comparison.json"
    cmp.insert(0, "rehearsal", bool(rehearsal))  # every line says what its numbers are
    if setting:
        cmp.insert(0, "setting", setting)
    cmp.to_csv(csv_path, index=False)
    findings = paper.check_findings(paper.by_paper_row(comparable, refs))
    findings.insert(0, "rehearsal", bool(rehearsal))
    from hybridlib.util.files import atomic_write_json

    atomic_write_json(json_path, {"table": table, "title": TABLES.get(table, {}).get("title", "every paper config"),
                                  "label": label, "ingredients": checks,
                                  "rows_finished": sorted(ours), "rows_asked": [e.row for e in entries],
                                  "comparison": json.loads(cmp.to_json(orient="records")),
                                  "findings": json.loads(findings.to_json(orient="records")),
                                  "rehearsal": str(rehearsal) if rehearsal else None})
    return {"comparison": cmp, "text": text, "files": [csv_path, json_path], "ours": ours}
