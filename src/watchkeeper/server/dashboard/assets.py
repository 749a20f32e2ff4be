"""Static files of the dashboard: plotly.js from the installed ``plotly`` package (no CDN: the
dashboard works offline), and the dashboard's own script and stylesheet.

Each file is served under a name that holds its version or content hash, so it can be cached
for a year (``immutable``); the bytes and their gzip form are read and compressed once per
process.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from watchkeeper.store.state import NotFoundError

PREFIX = "/ui/static/"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True)
class Asset:
    name: str
    body: bytes
    etag: str

    @functools.cached_property
    def gzipped(self) -> bytes:
        return gzip.compress(self.body, compresslevel=6, mtime=0)

    @property
    def media_type(self) -> str:
        return _TYPES[self.name[self.name.rindex(".") :]]


def _own(filename: str) -> Asset:
    body = resources.files("watchkeeper").joinpath(f"templates/dashboard/{filename}").read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:12]
    stem, ext = filename.rsplit(".", 1)
    return Asset(f"{stem}-{digest}.{ext}", body, digest)


def _plotly() -> Asset:
    from plotly.offline import get_plotlyjs_version

    body = resources.files("plotly").joinpath("package_data/plotly.min.js").read_bytes()
    version = get_plotlyjs_version()
    return Asset(f"plotly-{version}.min.js", body, f"plotly-{version}")


@functools.cache
def assets() -> dict[str, Asset]:
    """Served file name → asset."""
    found = [_plotly(), _own("dashboard.js"), _own("dashboard.css")]
    return {a.name: a for a in found}


@functools.cache
def asset_urls() -> dict[str, str]:
    """``plotly``, ``js``, ``css`` → the URL to put in a page."""
    names = list(assets())
    return {"plotly": PREFIX + names[0], "js": PREFIX + names[1], "css": PREFIX + names[2]}


def serve_asset(request: Request, name: str) -> Response:
    """The asset ``name``: gzip when the client takes it, 304 when it has it already."""
    asset = assets().get(name)
    if asset is None:
        raise NotFoundError(f"no static file {name!r}")
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "ETag": f'"{asset.etag}"',
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match", "").strip() == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
