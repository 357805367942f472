"""Static files under content-hashed names, compressed, cached for a year.

``url_for('static', filename='css/app.css')`` gives ``/static/css/app.3f2a1b9c0d.css``: the name
changes whenever the file does, so browsers may keep it for ever (``immutable``) and still never
run yesterday's JavaScript after an upgrade. Text files are gzipped once, at start, and served
compressed to every browser that accepts it. The plain names keep working (``no-cache``: the
browser revalidates with the ETag), for bookmarks and anything built without ``url_for``.

Why not a library: Flask-Static-Digest and WhiteNoise both want a build step that writes the
hashed and compressed copies next to the originals, and an installed package's folder is not
ours to write (ProtectSystem=strict in the unit). The whole set is a few hundred kilobytes,
hashed and compressed in memory in about 40 ms; a process that makes several apps (the tests
make hundreds) does it once per file version.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import mimetypes
from pathlib import Path

from flask import Flask, Response, abort, request

# Files worth compressing; images and fonts are compressed already.
COMPRESSIBLE = {".css", ".js", ".svg", ".json", ".map", ".txt", ".html"}
HASH_LENGTH = 10
YEAR = 365 * 24 * 3600
FAVICON = "favicon.svg"


@dataclasses.dataclass(frozen=True)
class Asset:
    """One static file, read at start: its bytes, gzipped bytes (if smaller) and hashed name."""

    name: str
    hashed_name: str
    body: bytes
    gzipped: bytes | None
    mimetype: str
    etag: str


class AssetFolder:
    """Every file under one folder, served by plain or hashed name (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.assets: dict[str, Asset] = {}
        self.by_hashed_name: dict[str, Asset] = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            asset = _load(root, path)
            self.assets[asset.name] = asset
            self.by_hashed_name[asset.hashed_name] = asset

    def hashed(self, filename: str) -> str:
        """The content-hashed name of ``filename`` (itself if there is no such file)."""
        asset = self.assets.get(filename)
        return asset.hashed_name if asset else filename

    def serve(self, filename: str) -> Response:
        """Answer a request for a plain or hashed name (404 for anything else)."""
        asset = self.by_hashed_name.get(filename)
        immutable = asset is not None
        asset = asset or self.assets.get(filename)
        if asset is None:
            abort(404)
        response = Response(mimetype=asset.mimetype)
        response.headers["Cache-Control"] = (f"public, max-age={YEAR}, immutable" if immutable
                                             else "no-cache")
        response.headers["Vary"] = "Accept-Encoding"
        response.set_etag(asset.etag)
        if request.if_none_match.contains(asset.etag):
            response.status_code = 304
            return response
        if asset.gzipped is not None and "gzip" in request.accept_encodings:
            response.set_data(asset.gzipped)
            response.headers["Content-Encoding"] = "gzip"
        else:
            response.set_data(asset.body)
        return response


# (path, size, mtime) -> its Asset: a changed file is read again, an unchanged one is not
_LOADED: dict[tuple[str, str, int, int], Asset] = {}


def _load(root: Path, path: Path) -> Asset:
    stat = path.stat()
    key = (str(root), str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _LOADED:
        _LOADED[key] = _read(root, path)
    return _LOADED[key]


def _read(root: Path, path: Path) -> Asset:
    name = path.relative_to(root).as_posix()
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    hashed_name = f"{name[:-len(path.suffix)]}.{digest[:HASH_LENGTH]}{path.suffix}" \
        if path.suffix else f"{name}.{digest[:HASH_LENGTH]}"
    gzipped = None
    if path.suffix.lower() in COMPRESSIBLE:
        # mtime=0: the same bytes every start, so caches and ETags agree across restarts
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        gzipped = packed if len(packed) < len(body) else None
    mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Asset(name, hashed_name, body, gzipped, mimetype, digest[:32])


def init_app(app: Flask, folders: dict[str, Path]) -> None:
    """Serve each endpoint's folder through an AssetFolder and hash its names in url_for."""
    served = {endpoint: AssetFolder(root) for endpoint, root in folders.items()}

    def hashed_names(endpoint: str | None, values: dict[str, object]) -> None:
        folder = served.get(endpoint or "")
        if folder is not None and isinstance(values.get("filename"), str):
            values["filename"] = folder.hashed(str(values["filename"]))

    app.url_defaults(hashed_names)
    for endpoint, folder in served.items():
        app.view_functions[endpoint] = folder.serve
    app.extensions["nvr_assets"] = served
    # Browsers ask for /favicon.ico whatever the page links: answer with the SVG icon
    app.add_url_rule("/favicon.ico", endpoint="favicon",
                     view_func=lambda: served["static"].serve(FAVICON))
