"""Official pretrained weights of the audio backbones: where they are published and how to fetch them.

``python -m hybridlib download weights NAME [--dest DIR]`` (or :func:`download_weights`) downloads the
official file into ``<data>/weights/`` (resumable, md5-verified where the publisher lists a checksum).
:func:`hybridlib.models.audio.build_audio_backbone` calls :func:`weights_path` when no checkpoint is
given, so with internet access ``build_audio_backbone("panns-cnn14")`` just works.

* PANNs (Kong et al., Zenodo record 3987831): md5 checksums as listed by Zenodo.
* EfficientAT (Schmid et al., GitHub release v0.0.1): the release lists no checksum, so ``md5`` is
  ``None``; the download is verified by loading it (every key and shape must match the model), and
  its md5 is printed so it can be pinned.
* sfx-cnn ships inside the ``aisfx`` package (``pip install --no-deps aisfx==0.1.2``); no download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WeightsInfo:
    name: str  # backbone name in build_audio_backbone
    url: str | None
    filename: str
    md5: str | None
    source: str  # who publishes it, for the docs
    note: str = ""


WEIGHTS: dict[str, WeightsInfo] = {
    "panns-cnn14": WeightsInfo(
        "panns-cnn14",
        "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth?download=1",
        "Cnn14_mAP=0.431.pth",
        "541141fa2ee191a88f24a3219fff024e",
        "Kong et al., PANNs, Zenodo 3987831",
        "AudioSet mAP 0.431",
    ),
    "panns-resnet38": WeightsInfo(
        "panns-resnet38",
        "https://zenodo.org/record/3987831/files/ResNet38_mAP%3D0.434.pth?download=1",
        "ResNet38_mAP=0.434.pth",
        "bf12f36aaabac4e0855e22d3c3239c1b",
        "Kong et al., PANNs, Zenodo 3987831",
        "AudioSet mAP 0.434; the audio encoder of Mei et al.",
    ),
    "efficientat-mn40": WeightsInfo(
        "efficientat-mn40",
        "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn40_as_ext_mAP_487.pt",
        "mn40_as_ext_mAP_487.pt",
        None,
        "Schmid et al., EfficientAT release v0.0.1",
        "mn40_as_ext, AudioSet mAP 0.487; the hybrid paper's audio model",
    ),
    "efficientat-mn10": WeightsInfo(
        "efficientat-mn10",
        "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn10_as_mAP_471.pt",
        "mn10_as_mAP_471.pt",
        None,
        "Schmid et al., EfficientAT release v0.0.1",
        "mn10_as, AudioSet mAP 0.471",
    ),
    "sfx-cnn": WeightsInfo(
        "sfx-cnn",
        None,
        "checkpoint.pth",
        None,
        "aiSFX package (CC BY 4.0), bundled",
        "installed with the package; no download",
    ),
}


def weights_dir() -> Path:
    from hybridlib.paths import data_dir

    return data_dir() / "weights"


def _info(name: str) -> WeightsInfo:
    if name not in WEIGHTS:
        raise ValueError(f"no official weights known for {name!r}; choose from {sorted(WEIGHTS)}")
    return WEIGHTS[name]


def weights_path(name: str, dest_dir: str | Path | None = None, download: bool = False) -> Path:
    """Local path of ``name``'s official file; downloads it when missing and ``download`` is set.

    Raises ``FileNotFoundError`` (with the command to run) when the file is missing and not downloaded.
    """
    info = _info(name)
    if info.url is None:
        from hybridlib.bundled import sfx_cnn_checkpoint

        return sfx_cnn_checkpoint()
    path = Path(dest_dir or weights_dir()) / info.filename
    if path.is_file():
        return path
    if download:
        return download_weights(name, dest_dir)
    raise FileNotFoundError(
        f"weights for {name!r} not found at {path}; fetch them with `python -m hybridlib download weights {name}` "
        f"({info.url})"
    )


def file_md5(path: str | Path) -> str:
    """md5 of a file (the same helper the dataset downloads use)."""
    from hybridlib.data.download import md5sum

    return md5sum(path)


def download_weights(name: str, dest_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Download the official weights of backbone ``name`` into ``dest_dir`` (default ``<data>/weights``).

    md5-verified when the publisher lists a checksum; afterwards the file is loaded into the model
    (strict key and shape check), so a corrupt or wrong file is caught either way and deleted.
    """
    info = _info(name)
    if info.url is None:
        return weights_path(name)
    from hybridlib.data.download import download_file  # lazy: the data package owns HTTP downloads

    dest = Path(dest_dir or weights_dir()) / info.filename
    path = Path(download_file(info.url, dest, md5=info.md5, progress=progress))
    from hybridlib.models.audio import build_audio_backbone
    from hybridlib.models.audio.checkpoints import CheckpointError

    try:
        build_audio_backbone(name, checkpoint=path)
    except CheckpointError:
        path.unlink(missing_ok=True)
        raise
    if info.md5 is None:
        print(f"{info.filename}: md5 {file_md5(path)} (the publisher lists no checksum)")
    return path
