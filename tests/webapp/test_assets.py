"""Static files: content-hashed names, cached for a year, gzipped; the favicon."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from flask.testing import FlaskClient

from webapp.assets import AssetFolder


def stylesheet_url(client: FlaskClient) -> str:
    page = client.get("/auth/login").get_data(as_text=True)
    return re.search(r'href="(/static/css/app\.[0-9a-f]{10}\.css)"', page).group(1)


def test_pages_link_hashed_names_cached_for_a_year_and_gzipped(client: FlaskClient) -> None:
    url = stylesheet_url(client)
    response = client.get(url, headers={"Accept-Encoding": "gzip, br"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    plain = client.get("/static/css/app.css")  # the old name still works, revalidated
    assert plain.headers["Cache-Control"] == "no-cache" and "Content-Encoding" not in plain.headers
    assert gzip.decompress(response.data) == plain.data
    assert client.get("/static/css/app.css",
                      headers={"If-None-Match": plain.headers["ETag"]}).status_code == 304
    page = client.get("/auth/login").get_data(as_text=True)
    assert re.search(r'/static/vendor/bootstrap/bootstrap\.min\.[0-9a-f]{10}\.css', page)


def test_unknown_names_and_paths_out_of_the_folder_are_404(client: FlaskClient) -> None:
    for url in ("/static/css/app.0000000000.css", "/static/nope.js", "/static/../assets.py",
                "/static/%2e%2e/assets.py", "/static/vendor/../../webapp/assets.py"):
        assert client.get(url).status_code == 404, url


def test_a_changed_file_gets_a_new_name(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("let a = 1;\n")
    before = AssetFolder(tmp_path).hashed("app.js")
    (tmp_path / "app.js").write_text("let a = 2;\n")
    after = AssetFolder(tmp_path).hashed("app.js")
    assert before != after and before.startswith("app.") and after.endswith(".js")


def test_the_favicon_needs_no_login(client: FlaskClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert b"<svg" in response.data
    assert 'rel="icon"' in client.get("/auth/login").get_data(as_text=True)
