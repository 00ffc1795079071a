"""Official pretrained weights of the audio backbones: where they are published and how to fetch them.

``python -m hybridlib download weights NAME [--dest DIR]`` downloads the official file into
``<data>/weights/`` (resumable, md5-verified where the publisher lists a checksum) and loads it into the
model to verify it. :func:`hybridlib.models.audio.build_audio_backbone` does the same when no checkpoint is
given and the file is missing, so with internet access ``build_audio_backbone("panns-cnn14")`` just works.

* PANNs (Kong et al., Zenodo record 3987831): md5 checksums as listed by Zenodo.
* EfficientAT (Schmid et al., GitHub release v0.0.1): the release lists no checksum, so ``md5`` is
  ``None``; the download is verified by loading it (every key and shape must match the model), and
  its md5 is printed so it can be pinned.
* sfx-cnn ships inside the ``aisfx`` package (``pip install --no-deps aisfx==0.1.2``); no download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hybridlib.util.errors import UserError
from hybridlib.util.fetch import download_file, md5sum, source_url


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


def weights_info(name: str) -> WeightsInfo:
    if name not in WEIGHTS:
        raise UserError(f"no official weights known for {name!r}; choose from {sorted(WEIGHTS)}")
    return WEIGHTS[name]


def weights_path(name: str, dest_dir: str | Path | None = None) -> Path:
    """Where ``name``'s official file lives (``dest_dir`` or ``<data>/weights``; sfx-cnn: the bundled file).

    The file may not exist yet: :func:`download_weights` fetches it.
    """
    info = weights_info(name)
    if info.url is None:
        from hybridlib.bundled import sfx_cnn_checkpoint

        return sfx_cnn_checkpoint()
    return Path(dest_dir or weights_dir()) / info.filename


def download_weights(name: str, dest_dir: str | Path | None = None, progress: bool = True,
                     mirror: str | None = None) -> Path:
    """Download the official weights of backbone ``name`` (resumable; md5-verified when the publisher lists a
    checksum, else the computed md5 is printed so it can be pinned). Returns the file's path.

    ``mirror``: a base URL serving the file under its official name (default ``$HYBRIDLIB_MIRROR``, else the
    publisher; :func:`hybridlib.util.fetch.source_url`); the official md5 above is checked all the same.

    :func:`hybridlib.models.audio.build_audio_backbone` loads the file right after (strict key and shape
    check) and deletes a download that does not fit the model.
    """
    info = weights_info(name)
    dest = weights_path(name, dest_dir)
    if info.url is None or dest.is_file():
        return dest
    url = source_url(info.url, info.filename, mirror)
    path = Path(download_file(url, dest, md5=info.md5, progress=progress))
    if info.md5 is None:
        print(f"{info.filename}: md5 {md5sum(path)} (the publisher lists no checksum)")
    return path


STANDIN_SUFFIX = ".standin.json"


def is_standin(path: str | Path | None) -> bool:
    """Whether ``path`` is a random-weights stand-in written by :func:`write_random_weights`."""
    return path is not None and Path(str(path) + STANDIN_SUFFIX).is_file()
