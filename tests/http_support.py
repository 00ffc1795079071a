"""A tiny HTTP file server for the download tests: serves bytes under official file names, honours ``Range``
(``http.server``'s own handler does not), logs every request, and can misbehave on purpose.

``FileServer().files["/name"] = data`` serves ``data`` at ``<url>/name`` (request paths are URL-unquoted, so
``/Cnn14_mAP%3D0.431.pth`` finds ``/Cnn14_mAP=0.431.pth``); ``add_folder(folder)`` serves every file of a folder
under its name, as a mirror a user set up would. Misbehaviour: a path in ``truncate_once`` gets half its body and
then a dropped connection (once); a path in ``ignore_range`` answers a ``Range`` request with the whole file
(status 200). Anything else is 404.
"""

from __future__ import annotations

import http.server
import threading
import urllib.parse
from pathlib import Path


class FileServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.log: list[dict] = []
        self.truncate_once: set[str] = set()
        self.ignore_range: set[str] = set()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server naming
                owner._get(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._watchdog = threading.Timer(120, self.httpd.shutdown)  # stops by itself even if a test hangs

    def add_folder(self, folder: str | Path) -> None:
        for path in sorted(Path(folder).iterdir()):
            if path.is_file():
                self.files[f"/{path.name}"] = path.read_bytes()

    def requested(self) -> list[str]:
        """The paths asked for, in order (URL-unquoted, without the query)."""
        return [entry["path"] for entry in self.log]

    def _get(self, handler) -> None:
        path = urllib.parse.unquote(handler.path.split("?")[0])
        rng = handler.headers.get("Range")
        self.log.append({"path": path, "range": rng})
        if path not in self.files:
            handler.send_error(404)
            return
        data = self.files[path]
        start = 0
        if rng and path not in self.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                handler.send_error(416)
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:]
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if path in self.truncate_once:
            self.truncate_once.discard(path)
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.connection.shutdown(2)  # drop the connection mid-body
            return
        handler.wfile.write(body)

    def __enter__(self) -> FileServer:
        self._thread.start()
        self._watchdog.start()
        return self

    def __exit__(self, *exc) -> None:
        self._watchdog.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
