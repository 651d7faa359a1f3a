"""A local stand-in for Kaggle's API, enough for the real ``kaggle`` client to download a competition.

What the client (kaggle 2.x, kagglesdk) does for ``competition_download_files``:

1. ``POST {endpoint}/v1/competitions.CompetitionApiService/DownloadDataFiles`` with a JSON body
   ``{"competitionName": ...}`` and HTTP basic auth (username, key). An error is a JSON body
   ``{"code": 4xx, "message": ...}``, which the client raises as ``requests.HTTPError``.
2. On success Kaggle answers with a redirect to a signed storage URL ending in ``.zip``; the client
   follows it (GET), names the file after the URL, and streams it, checking ``Content-Length``.
3. If the stream breaks, it retries (5 times, with back-off), asking for the rest with a ``Range``
   header.

The server binds to 127.0.0.1 only, answers one competition, and shuts itself down after
``lifetime`` seconds whatever happens, so a failing test cannot leave it running.
"""
from __future__ import annotations

import base64
import email.utils
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from catsdogs.config import ARCHIVE_NAME, COMPETITION

PORT = 7777  # kagglesdk's KaggleEnv.TEST endpoint is http://localhost:7777
DOWNLOAD = "/v1/competitions.CompetitionApiService/DownloadDataFiles"
MODES = ("ok", "rules", "drop", "drop_once", "short", "echo")


class KaggleStandIn:
    """``with KaggleStandIn(archive_bytes, "user", "key", mode="ok") as kaggle: ...``

    Modes: ``ok`` serves the archive; ``rules`` answers 403 (rules not accepted); ``drop`` cuts
    every download half way; ``drop_once`` cuts the first and honours the client's ``Range``
    retry; ``short`` sends half the archive as if it were all of it (no ``Content-Length``);
    ``echo`` answers 500 with a message that repeats the credentials it was sent, as careless
    servers and proxies do. Wrong credentials always get 401.
    """

    def __init__(self, archive: bytes, username: str, key: str, mode: str = "ok", lifetime: float = 120):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.archive, self.username, self.key, self.mode, self.lifetime = archive, username, key, mode, lifetime
        self.requests: list[tuple[str, str]] = []  # (method, path) in order
        self.downloads = 0
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> "KaggleStandIn":
        self._server = ThreadingHTTPServer(("127.0.0.1", PORT), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._deadline = threading.Timer(self.lifetime, self._server.shutdown)
        self._deadline.daemon = True
        self._deadline.start()
        return self

    def __exit__(self, *exc) -> None:
        self._deadline.cancel()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self
        last_modified = email.utils.formatdate(time.time() - 3600, usegmt=True)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def _json(self, code: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _credentials(self) -> str:
                auth = self.headers.get("Authorization", "")
                return base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""

            def do_POST(self) -> None:
                standin.requests.append(("POST", self.path))
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not self.path.endswith(DOWNLOAD):
                    return self._json(404, {"code": 404, "message": "Not found"})
                if self._credentials() != f"{standin.username}:{standin.key}":
                    return self._json(401, {"code": 401, "message": "Unauthenticated"})
                if body.get("competitionName") != COMPETITION:
                    return self._json(404, {"code": 404, "message": "Competition not found"})
                if standin.mode == "rules":
                    return self._json(403, {"code": 403, "message": "You must accept this competition's rules "
                                                                    "before you'll be able to download files."})
                if standin.mode == "echo":
                    return self._json(500, {"code": 500, "message": f"internal error for {self._credentials()}"})
                self._json(302, {}, {"Location": f"/storage/{COMPETITION}/{ARCHIVE_NAME}?X-Goog-Signature=abc"})

            def do_GET(self) -> None:
                standin.requests.append(("GET", self.path))
                if not self.path.startswith(f"/storage/{COMPETITION}/{ARCHIVE_NAME}"):
                    return self._json(404, {"code": 404, "message": "Not found"})
                standin.downloads += 1
                data, start = standin.archive, 0
                ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if ranged and standin.mode == "drop_once":
                    start = int(ranged.group(1))
                cut = standin.mode == "drop" or (standin.mode == "drop_once" and standin.downloads == 1)
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Last-Modified", last_modified)
                self.send_header("ETag", '"standin-1"')
                self.send_header("Accept-Ranges", "bytes")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                if standin.mode != "short":
                    self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if cut or standin.mode == "short":
                    body = body[: len(body) // 2]
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True  # with Content-Length promised, the client sees a broken stream

        return Handler
