"""Small helpers every notebook uses: the dataset, an output folder, ``results.json`` and saved figures.

The notebooks' ``DATA`` parameter names any folder the loaders read (the teaching set, Clotho in either layout,
AudioCaps); :func:`open_data` recognises what it holds (``DATASET`` overrides), says it in the notebook's first
output, records it in ``results.json`` (key ``dataset``) and gives the config values that train on it; every
figure :func:`save_figure` saves is then labelled with it.

The notebooks' ``parameters`` cell sets ``OUT_DIR``; the runner (:mod:`hybridlib.runner`) points it at
``runs/<timestamp>/<notebook>/``. Run interactively with ``OUT_DIR = None``, outputs go to
``runs/interactive/<notebook>/``.

Parameters are checked by :func:`hybridlib.notebook_parameters.check_parameters`.

Dataset text a notebook shows as Markdown (captions, keywords, file names) is built here, escaped by
:mod:`hybridlib.util.markup` (:func:`retrieval_example_markdown`, :func:`clip_markdown`): a caption reads as typed
and never becomes markup.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridlib.paths import runs_dir
from hybridlib.util.files import atomic_write_text
from hybridlib.util.markup import escape_markdown, markdown_code


def prepare_out_dir(out_dir: str | Path | None, notebook: str) -> Path:
    """Create and return the notebook's output folder; a ``results.json`` left by an earlier run is removed,
    so the file only ever holds what this run saved."""
    path = Path(out_dir) if out_dir else runs_dir() / "interactive" / notebook
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").unlink(missing_ok=True)
    return path


def to_jsonable(value: Any) -> Any:
    """Turn tensors, numpy values, paths and dataclasses into plain JSON values (NaN becomes null)."""
    if hasattr(value, "tolist") and callable(value.tolist):  # torch / numpy arrays and scalars
        return to_jsonable(value.tolist())
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_results(out_dir: str | Path, results: dict | None = None, **more: Any) -> None:
    """Merge ``results`` (and keyword values) into ``<out_dir>/results.json`` (started afresh by
    :func:`prepare_out_dir` each run). Returns nothing, so a cell ending with it prints no path."""
    path = Path(out_dir) / "results.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(to_jsonable({**(results or {}), **more}))
    atomic_write_text(path, json.dumps(current, indent=2, sort_keys=True))


def save_figure(fig, out_dir: str | Path, name: str, dpi: int = 110) -> None:
    """Save a matplotlib figure as ``<out_dir>/<name>.png``, labelled (bottom right) with the dataset that
    :func:`open_data` recorded for this output folder. Returns nothing, so a cell ending with it shows
    the figure and no ``PosixPath(...)`` line."""
    path = Path(out_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    label = dataset_label(out_dir)
    if label and not any(getattr(t, "_hybridlib_dataset", False) for t in fig.texts):
        text = fig.text(0.995, 0.002, f"data: {label}", ha="right", va="bottom", fontsize=7, color="0.35")
        text._hybridlib_dataset = True  # labelled once, however often the figure is saved
    fig.savefig(path, dpi=dpi, bbox_inches="tight")


@dataclass
class DataChoice:
    """The dataset a notebook runs on (:func:`open_data`): its name, root, layout and clips per split."""

    dataset: str                  # teaching | clotho | audiocaps | wavcaps-fs
    root: Path
    label: str                    # e.g. "Clotho (aac-datasets layout)"
    splits: dict[str, int]        # split name -> clips
    default: bool = False         # the generated teaching set at its default folder
    audioset_labels: Path | None = None
    notes: list[str] = field(default_factory=list)
    # "os" / "cs" -> clips with keywords / tags (all splits); "fs" -> clips with 2+ captions (the smallest split)
    metadata: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Short name for titles: ``"teaching set"``, ``"Clotho"``, ``"AudioCaps"``."""
        from hybridlib.data.detect import NAMES

        return NAMES[self.dataset]

    @property
    def roles(self) -> dict[str, str | None]:
        """``train``/``val``/``test`` -> this dataset's split name (None where it has none)."""
        from hybridlib.data.splits import DATASET_SPLITS, ROLES

        return dict(zip(ROLES, DATASET_SPLITS[self.dataset]))

    @property
    def ground_truth(self) -> bool:
        """Whether the root holds a generated set's ground truth (``events.csv``, ``scenes.csv``)."""
        return self.dataset == "teaching" and all((self.root / f).is_file() for f in ("events.csv", "scenes.csv"))

    def clip_labels(self, items) -> tuple[dict[str, str], dict[str, int], str]:
        """A class label per clip of ``items`` for class-structure plots, events per clip, and where they come
        from: a generated set's ground truth (the loudest event names the clip; ``events.csv``); a real dataset's
        first closed-set tag, else its first keyword (no event counts: an empty dict). Clips without any label
        are left out."""
        items = list(items)
        if self.ground_truth:
            from hybridlib.data.tables import read_csv_rows

            splits = {it.split for it in items}
            wanted = {it.clip_id for it in items}
            loudest: dict[str, tuple[float, str]] = {}
            counts: dict[str, int] = {}
            for row in read_csv_rows(self.root / "events.csv", ["file_name", "split", "label", "level_db"]):
                clip = row["file_name"]
                if clip not in wanted or row["split"] not in splits:
                    continue
                counts[clip] = counts.get(clip, 0) + 1
                level = float(row["level_db"])
                if clip not in loudest or level >= loudest[clip][0]:
                    loudest[clip] = (level, row["label"])
            return {c: lab for c, (_, lab) in loudest.items()}, counts, "ground truth: the loudest event"
        use_tags = any(it.tags for it in items)
        labels = {it.clip_id: (it.tags if use_tags else it.keywords)[0] for it in items
                  if (it.tags if use_tags else it.keywords)}
        return labels, {}, "first closed-set tag" if use_tags else "first keyword"

    def config_values(self) -> dict:
        """Keyword values for :func:`hybridlib.config.teaching_config` that read this dataset (the default
        teaching set: ``data_root=None``, so it is generated and checked as usual)."""
        values = {"dataset": self.dataset, "data_root": None if self.default else str(self.root)}
        if self.audioset_labels is not None:
            values["audioset_labels"] = str(self.audioset_labels)
        return values

    def config(self, name: str, **values):
        """``experiments/teaching/<name>.yaml`` (:func:`hybridlib.config.teaching_config` with ``values``) reading
        this dataset. A config fed keywords (OS) on a dataset without any reads its closed-set tags (CS) instead
        (AudioCaps with AudioSet labels); without either a metadata config stops with a one-line
        :class:`~hybridlib.data.DatasetError`."""
        from hybridlib.config import teaching_config
        from hybridlib.data import DatasetError
        from hybridlib.features.prepare import metadata_kind_for

        cfg = teaching_config(name, **self.config_values(), **values)
        kind = metadata_kind_for(cfg, self.dataset)
        if kind is not None:
            try:
                usable = self.metadata_kind(kind)
            except DatasetError as exc:
                raise DatasetError(f"config {name!r}: {exc}") from None
            if usable != kind:
                cfg = cfg.replace(metadata_by_dataset={**cfg.metadata_by_dataset, self.dataset: usable})
        return cfg

    def metadata_kind(self, wanted: str) -> str:
        """``wanted`` (``os`` keywords, ``cs`` tags, ``fs``) when this dataset has it, else the other of os/cs
        (AudioCaps has tags, no keywords); a :class:`~hybridlib.data.DatasetError` when it has neither."""
        from hybridlib.data import DatasetError

        if wanted not in ("os", "cs") or self.metadata.get(wanted):
            return wanted
        other = "cs" if wanted == "os" else "os"
        if self.metadata.get(other):
            return other
        hint = (" (AudioCaps' tags come from AudioSet's label files: class_labels_indices.csv and the segment "
                "CSVs in the AudioCaps folder)" if self.dataset == "audiocaps" else "")
        raise DatasetError(f"{self.label} in {self.root} has no metadata: no clip with keywords or tags{hint}")

    def load(self, split: str):
        """One split (its name or a role: ``train``, ``val``, ``test``) as its reader loads it, AudioCaps with
        AudioSet's tags when their files are there."""
        from hybridlib.data.loaders import load_split
        from hybridlib.data.splits import normalize_split

        split = self.roles.get(split) or normalize_split(self.dataset, split)
        kwargs = {"audioset_labels": self.audioset_labels} if self.audioset_labels is not None else {}
        return load_split(self.dataset, self.root, split, **kwargs)

    def unusable(self, cfg) -> str | None:
        """Why ``cfg`` (built by :meth:`config`) cannot train on this dataset, or None: full-sentence metadata
        needs two captions per clip in every split (AudioCaps' training clips have one); captions generated from
        keywords need keywords."""
        from hybridlib.features.prepare import metadata_kind_for

        if metadata_kind_for(cfg, self.dataset) == "fs" and not self.metadata.get("fs"):
            return f"full-sentence metadata (FS) needs clips with two captions or more in every split of {self.name}"
        if cfg.train_captions == "from-keywords" and not self.metadata.get("os"):
            return f"captions generated from keywords need keywords, and {self.name} has none"
        return None

    def configs(self, names, **values) -> dict:
        """``{name: config}`` (:meth:`config`) for the names this dataset can train; each one it cannot (no
        metadata of its kind, see :meth:`unusable`) is left out with one printed line saying why."""
        from hybridlib.data import DatasetError

        kept = {}
        for name in dict.fromkeys(names):
            try:
                cfg = self.config(name, **values)
            except DatasetError as exc:
                print(f"{name}: skipped on {self.name} ({exc})")
                continue
            why = self.unusable(cfg)
            if why:
                print(f"{name}: skipped on {self.name} ({why})")
                continue
            kept[name] = cfg
        return kept

    def summary(self) -> dict:
        """What ``results.json`` records under ``dataset``."""
        return {"name": self.dataset, "label": self.label, "root": str(self.root), "splits": dict(self.splits),
                "audioset_labels": str(self.audioset_labels) if self.audioset_labels else None,
                "clips_with_metadata": dict(self.metadata), "notes": list(self.notes)}

    def __str__(self) -> str:
        sizes = ", ".join(f"{split} {n}" for split, n in self.splits.items())
        # the default teaching set by its folder's name: the line is the same on every machine (nbval compares it)
        where = f"its default folder {self.root.name}/" if self.default else str(self.root)
        return f"dataset: {self.label} in {where} | clips per split: {sizes}" + "".join(
            f" | {note}" for note in self.notes)


def open_data(data: str | Path | None, dataset: str | None = None, smoke: bool = False,
              out: str | Path | None = None, show: bool = True) -> DataChoice:
    """The dataset of a notebook's ``DATA`` (``DATASET`` overrides what is recognised from the folder).

    ``data`` None: the teaching set at its default folder (generated on first use). Otherwise any root the
    loaders read (:func:`hybridlib.data.detect.detect_dataset`): a teaching set is used as it is, whatever
    made it; Clotho in the aac-datasets or Zenodo layout; AudioCaps, with AudioSet's label files for
    closed-set tags when they are there. ``show`` prints the dataset and its split sizes (the notebook's first
    output); ``out`` records them in ``<out>/results.json`` under ``dataset``, and :func:`save_figure` then
    labels each figure with the dataset's name.
    """
    from hybridlib.data.detect import FoundDataset, detect_dataset, split_summary

    if data is None and dataset in (None, "teaching"):
        from hybridlib.data import ensure_teaching_set

        found = FoundDataset("teaching", Path(ensure_teaching_set(smoke=smoke, progress=show)), "")
        default = True
    else:
        if data is None:
            from hybridlib.paths import data_dir

            data = data_dir()
        found = detect_dataset(data, dataset)
        if found.dataset == "teaching":
            from hybridlib.data.teaching import use_teaching_set

            use_teaching_set(found.root)
        default = False
    label = found.label
    kwargs = {"audioset_labels": found.audioset_labels} if found.audioset_labels is not None else {}
    per_split = split_summary(found, **kwargs)
    metadata = {"os": sum(s["keywords"] for s in per_split.values()), "cs": sum(s["tags"] for s in per_split.values()),
                "fs": min((s["multi_caption"] for s in per_split.values()), default=0)}
    choice = DataChoice(found.dataset, found.root, label, {k: s["clips"] for k, s in per_split.items()}, default,
                        found.audioset_labels, metadata=metadata)
    if found.dataset == "audiocaps" and found.audioset_labels is None:
        choice.notes.append("no AudioSet label files: no closed-set tags")
    if not metadata["os"]:
        choice.notes.append("no keywords (OS metadata)" + ("; hybrid configs read the closed-set tags (CS)"
                                                           if metadata["cs"] else "; no metadata at all"))
    if show:
        print(choice, flush=True)
    if out is not None:
        save_results(out, dataset=choice.summary())
    return choice


def dataset_label(out_dir: str | Path) -> str | None:
    """The dataset's name recorded by :func:`open_data` in ``<out_dir>/results.json`` (None: not recorded)."""
    path = Path(out_dir) / "results.json"
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text()).get("dataset")
    except ValueError:
        return None
    return entry.get("label") if isinstance(entry, dict) else None


def retrieval_example_markdown(example: dict, model: str, other: str) -> str:
    """One retrieval example of :func:`hybridlib.evaluation.retrieval_examples` (a row as a dict) as a line of
    Markdown: its kind in bold, the caption in italics, the clip's metadata as code and the rank of the correct
    clip under ``model`` and ``other`` (the labels the example's columns carry). Every text is escaped
    (:mod:`hybridlib.util.markup`): a caption such as ``<img src=x onerror=...>`` or ``**a**`` reads as typed."""
    metadata = example.get("metadata")
    return (f"**{escape_markdown(example['kind'])}** · *{escape_markdown(example['caption'])}* · keywords: "
            f"{markdown_code(metadata) if metadata else 'none'} · rank of the correct clip: "
            f"{escape_markdown(model)} {example[f'rank ({model})']}, "
            f"{escape_markdown(other)} {example[f'rank ({other})']}")


def clip_markdown(label: str, clip: str) -> str:
    """``label: `clip``` as Markdown, both escaped (a file name is shown as typed, whatever it holds)."""
    return f"{escape_markdown(label)}: {markdown_code(clip)}"
