"""/docs and /redoc work on a machine without internet: every script, style sheet and icon they load is served by
the API itself (fastapi-offline's vendored Swagger UI and ReDoc), and nothing points at another host."""

import re

import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_what_the_api_serves(client, page):
    response = client.get(page)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    html = response.text
    assert not re.search(r"""(src|href)=["']https?://""", html), html
    assert "cdn.jsdelivr" not in html and "fonts.googleapis" not in html and "unpkg.com" not in html
    assets = re.findall(r"""(?:src|href)=["'](/[^"']+)["']""", html)
    assert assets, html
    for asset in assets:
        fetched = client.get(asset)
        assert fetched.status_code == 200 and len(fetched.content) > 100, asset
    assert client.get("/openapi.json").json()["info"]["title"] == "stagerun"
