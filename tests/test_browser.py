"""Drive the built public site in a real (headless) Chromium.

Builds the public site once into a temporary folder, serves it with Python's
``http.server`` on a free local port, and uses Playwright to drive Debian's
``/usr/bin/chromium`` (Playwright never downloads a browser here). It follows
every page of the navigation, searches for ``unnorm_key``, checks that plots
on the results page load, and saves a screenshot to ``artifacts/site.png``.

Needs ``bash scripts/install_browser.sh`` (chromium via apt, playwright via pip)
and the docs extra; otherwise the tests skip and say so.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "artifacts"
INSTALL_HINT = "run `bash scripts/install_browser.sh` (Debian chromium + the playwright package)"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000

if importlib.util.find_spec("playwright") is None:
    pytest.skip(f"the playwright Python package is not installed: {INSTALL_HINT}", allow_module_level=True)
if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(f"{CHROMIUM} is not installed: {INSTALL_HINT}", allow_module_level=True)
if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
    pytest.skip("mkdocs is not installed: .venv/bin/pip install -e '.[docs]'", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


def _config() -> dict:
    from mkdocs.utils.yaml import yaml_load

    with open(REPO / "mkdocs.yml", encoding="utf-8") as handle:
        return yaml_load(handle)


def _nav_pages(nav) -> list[tuple[str, str]]:
    """(title, docs path) of every page in a MkDocs nav, in order."""
    pages = []
    for item in nav:
        ((title, value),) = item.items()
        if isinstance(value, list):
            pages += _nav_pages(value)
        else:
            pages.append((title, value))
    return pages


def _url_path(doc: str) -> str:
    """``exercises/index.md`` -> ``exercises/``; ``loop.md`` -> ``loop/``; ``notebooks/x.ipynb`` -> ``notebooks/x/``."""
    stem = doc.rsplit(".", 1)[0]
    if stem == "index":
        return ""
    if stem.endswith("/index"):
        return stem[: -len("index")]
    return stem + "/"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def site_url():
    """Build the public site strictly and serve it on a free port; yield its base URL."""
    with tempfile.TemporaryDirectory(prefix="vla-ch2-site-") as tmp:
        out = Path(tmp) / "site"
        result = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-f", "mkdocs.yml", "-d", str(out)],
            cwd=REPO, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
            capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        handler = functools.partial(_QuietHandler, directory=str(out))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def browser_context():
    user_data = tempfile.mkdtemp(prefix="vla-ch2-chromium-")
    try:
        with sync_playwright() as pw:
            # A fresh profile each run; Playwright takes it as user_data_dir
            # (it refuses --user-data-dir in args).
            context = pw.chromium.launch_persistent_context(
                user_data,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 900},
            )
            context.set_default_timeout(TIMEOUT_MS)
            # The site must work offline: refuse anything that is not the local server.
            context.route(
                "**/*",
                lambda route: route.continue_()
                if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost")
                or route.request.url.startswith(("data:", "blob:"))
                else route.abort(),
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(user_data, ignore_errors=True)


@pytest.fixture
def page(browser_context):
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_navigation_lists_and_reaches_every_page(site_url, page):
    config = _config()
    site_name = config["site_name"]
    pages = _nav_pages(config["nav"])
    expected = {urljoin(site_url, _url_path(doc)) for _, doc in pages}

    page.goto(site_url)
    hrefs = page.eval_on_selector_all(
        "nav.md-nav--primary a.md-nav__link[href]", "els => els.map(e => e.href)"
    )
    listed = {href.split("#")[0] for href in hrefs}
    assert expected <= listed, f"pages missing from the rendered navigation: {sorted(expected - listed)}"

    for title, doc in pages:
        url = urljoin(site_url, _url_path(doc))
        response = page.goto(url)
        assert response is not None and response.ok, f"{url}: HTTP {response.status if response else '?'}"
        want = site_name if doc == "index.md" else f"{title} - {site_name}"
        assert page.title() == want, f"{url}: title {page.title()!r}, expected {want!r}"
        h1 = page.locator("article h1").first
        expect(h1).to_be_visible()
        heading = h1.inner_text().strip()
        assert heading and "404" not in heading, f"{url}: bad h1 {heading!r}"


def test_clicking_a_nav_link_navigates(site_url, page):
    page.goto(site_url)
    page.locator("nav.md-nav--primary a.md-nav__link", has_text="Running it").first.click()
    expect(page).to_have_url(urljoin(site_url, "running/"))
    expect(page.locator("article h1").first).to_have_text(re.compile(r"^\s*Running it"))


def test_search_finds_unnorm_key(site_url, page):
    page.goto(site_url)
    box = page.locator("input.md-search__input")
    if not box.is_visible():
        page.locator("label[for='__search']").first.click()
    box.fill("unnorm_key")
    results = page.locator(".md-search-result__item")
    # The search index is built by a web worker: on a loaded 2-core machine it can take a while.
    expect(results.first).to_be_visible(timeout=30_000)
    assert results.count() > 0
    assert "unnorm" in page.locator(".md-search-result").inner_text().lower()


def test_results_plots_load(site_url, page):
    page.goto(urljoin(site_url, "results/"), wait_until="load")
    images = page.eval_on_selector_all(
        "article img", "els => els.map(e => ({src: e.currentSrc || e.src, w: e.naturalWidth, done: e.complete}))"
    )
    plots = [img for img in images if "/results/" in urlparse(img["src"]).path]
    if not plots:
        pytest.skip("the results page has no image under results/ yet (results are still being produced)")
    page.wait_for_function(
        "() => [...document.querySelectorAll('article img')].every(i => i.complete)", timeout=TIMEOUT_MS
    )
    images = page.eval_on_selector_all(
        "article img", "els => els.map(e => ({src: e.currentSrc || e.src, w: e.naturalWidth}))"
    )
    broken = [img["src"] for img in images if "/results/" in urlparse(img["src"]).path and img["w"] <= 0]
    assert not broken, f"plots that did not load: {broken}"


def test_screenshot(site_url, page):
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "site.png"
    page.goto(site_url, wait_until="load")
    page.screenshot(path=str(target), full_page=True)
    assert target.is_file() and target.stat().st_size > 1000
