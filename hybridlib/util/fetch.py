"""A generic HTTP downloader with resume and md5 verification (no dataset or model knowledge).

Resume: a partial download lives in ``<file>.part``; the next call asks the server for the remaining
bytes (HTTP ``Range``) and appends; a server that ignores ``Range`` (status 200) restarts the file.
Completed files are checked against their md5 (a mismatch deletes the ``.part`` file and raises
:class:`DownloadError`), and a file already present with the right md5 is not fetched again. A file already
present with another md5 was not written here (a download only ever lands by renaming a verified ``.part``):
it is left as it is and the download is refused, naming it.

Mirrors (:func:`source_url`): every download can come from a base URL that serves the files under their official
names (``download --mirror URL`` or the environment variable ``HYBRIDLIB_MIRROR``; ``file://`` folders work
too). The mirror is trusted for nothing: what it serves is checked against the official checksums of the
caller's table, never against a list the mirror supplies.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from hybridlib.util.errors import HybridlibError, UserError

MIRROR_ENV = "HYBRIDLIB_MIRROR"


class DownloadError(HybridlibError, RuntimeError):
    """A download failed or its checksum did not match; the message names the URL and the file.

    ``exit_code`` 2 when the input is wrong (the URL serves no such file, the file served or found in place is not
    the official one), 1 when the transfer failed (connection lost, server error: rerun to resume).
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def mirror_base(mirror: str | None = None) -> str | None:
    """The mirror base URL in effect: ``mirror`` if given, else ``$HYBRIDLIB_MIRROR``, else None (official hosts).

    Only ``http://``, ``https://`` and ``file://`` URLs are accepted (a :class:`UserError` names the value).
    """
    source = "--mirror"
    if not mirror:
        mirror, source = os.environ.get(MIRROR_ENV, "").strip() or None, MIRROR_ENV
    if mirror is None:
        return None
    if urllib.parse.urlsplit(mirror).scheme.lower() not in {"http", "https", "file"}:
        raise UserError(f"{source}: a mirror is a base URL starting with http://, https:// or file:// (got {mirror!r})")
    return mirror.rstrip("/")


def source_url(official_url: str, filename: str, mirror: str | None = None) -> str:
    """Where to fetch ``filename``: ``<mirror>/<filename>`` (URL-quoted) when a mirror is in effect
    (:func:`mirror_base`), else ``official_url``."""
    base = mirror_base(mirror)
    return official_url if base is None else f"{base}/{urllib.parse.quote(filename)}"


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
    if dest.is_file():
        found = md5sum(dest) if md5 is not None else None
        if found == md5:
            return dest
        raise DownloadError(f"{dest} is already there but is not the official file (md5 {found}, expected {md5}); "
                            "it was not written by hybridlib and is left as it is: move it away to download the "
                            "official one", exit_code=2)
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
            code = 2 if 400 <= exc.code < 500 else 1  # the URL serves no such file / the server failed
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason} (downloading to {dest})", code) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError):  # a file:// mirror without the file
            raise DownloadError(f"{url}: no such file (downloading to {dest})", 2) from exc
        raise DownloadError(f"{url}: {exc.reason} (downloading to {dest}; rerun to resume)") from exc
    except (TimeoutError, OSError) as exc:
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
            raise DownloadError(f"{url}: md5 mismatch for {dest.name}: expected {md5}, got {got} (file deleted)", 2)
    part.replace(dest)
    return dest
