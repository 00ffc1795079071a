"""A generic HTTP downloader with resume and md5 verification (no dataset or model knowledge).

Resume: a partial download lives in ``<file>.part``; the next call asks the server for the remaining
bytes (HTTP ``Range``) and appends; a server that ignores ``Range`` (status 200) restarts the file.
Completed files are checked against their md5 (a mismatch deletes the file and raises
:class:`DownloadError`), and a file already present with the right md5 is not fetched again.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from pathlib import Path

from hybridlib.util.errors import HybridlibError


class DownloadError(HybridlibError, RuntimeError):
    """A download failed or its checksum did not match; the message names the URL and the file."""


def md5sum(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def download_file(url: str, dest: str | Path, md5: str | None = None, progress: bool = True,
                  timeout: float = 60.0, chunk: int = 1 << 16) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part`` via HTTP Range), verify ``md5``; return ``dest``.

    An existing ``dest`` whose md5 matches is returned without network access (without ``md5``, any
    existing file is kept). On a checksum mismatch the bad file is deleted and :class:`DownloadError` raised.
    """
    from hybridlib.util.progress import progress_bar as tqdm

    dest = Path(dest)
    if dest.is_file() and (md5 is None or md5sum(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "hybridlib-downloader"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the .part file is complete
            response = None
        else:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason} (downloading to {dest})") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DownloadError(f"{url}: {exc} (downloading to {dest}; rerun to resume)") from exc
    if response is not None:
        with response:
            status = getattr(response, "status", 200)
            mode = "ab" if have and status == 206 else "wb"
            if mode == "wb":
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, mode) as fh, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                               desc=dest.name, disable=not progress) as bar:
                try:
                    while block := response.read(chunk):
                        fh.write(block)
                        bar.update(len(block))
                except (OSError, TimeoutError, http.client.HTTPException) as exc:
                    raise DownloadError(f"{url}: connection lost after {fh.tell()} bytes; rerun to resume "
                                        f"({part} kept)") from exc
                if total is not None and fh.tell() < total:  # closed early without an error
                    raise DownloadError(f"{url}: connection closed after {fh.tell()} of {total} bytes; "
                                        f"rerun to resume ({part} kept)")
    if md5 is not None:
        got = md5sum(part)
        if got != md5:
            part.unlink()
            raise DownloadError(f"{url}: md5 mismatch for {dest.name}: expected {md5}, got {got} (file deleted)")
    part.replace(dest)
    return dest
