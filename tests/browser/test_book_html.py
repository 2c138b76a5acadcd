"""Every page of the built book, opened in headless Chromium as a reader would see it.

A build that exits 0 can still ship raw LaTeX, missing figures or broken links. For each
HTML page of ``_build/html`` (served on 127.0.0.1) this asserts that

* MathJax typeset every formula: each Sphinx math node holds an ``mjx-container``, no raw
  ``$$``, ``\\(``, ``\\[``, ``\\frac`` or ``\\begin{`` is left in the text outside code, and
  no formula contains a MathJax error (``merror``) or an undefined macro, and no displayed
  formula is wider than the text column (at 1280 pixels it would be cut off or scroll);
* every ``<img>`` loaded (``naturalWidth > 0``);
* every link into the book resolves to an existing file and, with a ``#fragment``, to an
  element with that id;
* the console shows no error, no page script throws, and the page asks for nothing outside
  127.0.0.1 (the book must work offline: MathJax is served from ``_static/mathjax``).

Run with ``make browser-check`` (after ``make book-from-outputs`` or ``make book``).
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import posixpath
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML_DIR = Path(os.environ.get("ACTLIB_BOOK_HTML", ROOT / "_build" / "html")).resolve()

# Chromium as root in a container, with no network: the flags that keep it from trying to
# reach Google's services (each attempt would be a refused connection) and from sandboxing.
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
BROWSER_CANDIDATES = [
    "/usr/bin/chromium",  # Debian's package `chromium`
    "/usr/bin/google-chrome",  # GitHub's ubuntu runners
    "/usr/bin/google-chrome-stable",
]
HOW_TO_ENABLE = (
    "install Debian's Chromium (`sudo apt-get install chromium`; `make browser-check` does "
    "it by itself when run as root) or point CHROMIUM=/path/to/chrome at a Chromium or Chrome "
    "binary, then run `make browser-check`"
)


def find_browser() -> str | None:
    """The Chromium binary to drive: $CHROMIUM, then the usual system paths."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) else None
    for candidate in BROWSER_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="session")
def book_url() -> Iterator[str]:
    """The built book served over HTTP on 127.0.0.1 (a free port), as the reader sees it."""
    if not (HTML_DIR / "index.html").is_file():
        pytest.fail(f"no built book at {HTML_DIR}: run `make book-from-outputs` (or `make book`)")
    handler = functools.partial(_QuietHandler, directory=str(HTML_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def browser():
    """Headless system Chromium driven by Playwright; never a downloaded browser."""
    executable = find_browser()
    if executable is None:
        message = f"no Chromium found; to enable the browser check, {HOW_TO_ENABLE}"
        if os.environ.get("BROWSER_CHECK_REQUIRED") == "1":
            pytest.fail(f"BROWSER_CHECK_REQUIRED=1 but {message}")
        pytest.skip(f"browser check skipped: {message}")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: `pip install -r requirements.txt`"
    )
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        print(f"\nbrowser: {executable} (Chromium {chromium.version}); book: {HTML_DIR}")
        try:
            yield chromium
        finally:
            chromium.close()


# Folders of the build that hold assets, not pages.
ASSET_DIRS = {"_static", "_sources", "_images", "_downloads", "_panels_static"}
MAX_SHOWN = 15  # problems listed per page
RAW_TEX = ["$$", "\\(", "\\)", "\\[", "\\]", "\\frac", "\\begin{", "\\end{"]


def book_pages() -> list[str]:
    pages = [
        path.relative_to(HTML_DIR).as_posix()
        for path in HTML_DIR.rglob("*.html")
        if not ASSET_DIRS & set(path.relative_to(HTML_DIR).parts)
    ]
    return sorted(pages) or ["index.html"]  # a missing build fails in the book_url fixture


class _Anchors(html.parser.HTMLParser):
    """The ids a fragment can point at, and a ``<meta http-equiv="refresh">`` target."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.refresh: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attrs:
            if value and (name == "id" or (tag == "a" and name == "name")):
                self.ids.add(value)
        if tag == "meta" and (attributes.get("http-equiv") or "").lower() == "refresh":
            _, _, url = (attributes.get("content") or "").partition("=")
            self.refresh = url.strip().strip("'\"") or None


@functools.cache
def anchors_in(path: Path) -> _Anchors:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def ids_in(path: Path) -> set[str]:
    return anchors_in(path).ids


def broken_link(href: str, origin: str) -> str | None:
    """Why a resolved ``href`` that points into the book is broken, or None."""
    parts = urlsplit(href)
    if f"{parts.scheme}://{parts.netloc}" != origin:
        return None  # external (launch buttons, the repository): not checked offline
    relative = posixpath.normpath(unquote(parts.path)).lstrip("/")
    target = HTML_DIR / relative if relative not in ("", ".") else HTML_DIR
    if target.is_dir():
        target = target / "index.html"
    shown = href.removeprefix(origin)
    if not target.is_file():
        return f"broken link {shown}: no file {target.relative_to(HTML_DIR)}"
    fragment = unquote(parts.fragment)
    if fragment and target.suffix == ".html" and fragment not in ids_in(target):
        return f"broken link {shown}: no id '{fragment}' in {target.relative_to(HTML_DIR)}"
    return None


# Runs in the page once it has loaded: waits for MathJax and the images, then reports.
INSPECT_PAGE = """
async (rawTex) => {
  const MJ = window.MathJax;
  if (MJ && MJ.startup && MJ.startup.promise) { await MJ.startup.promise; }
  const images = Array.from(document.images);
  await Promise.race([
    Promise.all(images.map(img => img.complete ? null :
      new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); }))),
    new Promise(done => setTimeout(done, 10000)),
  ]);
  const mathNodes = Array.from(document.querySelectorAll('.math'));
  const untypeset = mathNodes.filter(el => !el.querySelector('mjx-container'))
    .map(el => el.textContent.trim().slice(0, 80));
  const mathErrors = [];
  if (MJ && MJ.startup && MJ.startup.document && MJ.startup.toMML) {
    for (const item of MJ.startup.document.math) {
      const mml = MJ.startup.toMML(item.root);
      if (mml.includes('<merror') || /<mtext mathcolor="red">\\\\/.test(mml)) {
        mathErrors.push(String(item.math).slice(0, 80));
      }
    }
  }
  mathErrors.push(...Array.from(document.querySelectorAll('mjx-merror'))
    .map(el => el.getAttribute('data-mjx-error') || 'mjx-merror'));
  const skip = 'pre, code, kbd, samp, script, style, noscript, template, textarea, mjx-container';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const rawLeft = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip)) continue;
    const text = node.textContent;
    const hit = rawTex.find(tex => text.includes(tex));
    if (hit) rawLeft.push(hit + ' in: ' + text.trim().slice(0, 80));
  }
  const column = document.querySelector('.bd-article, main, article');
  const columnRight = column ? column.getBoundingClientRect().right : window.innerWidth;
  const tooWide = Array.from(document.querySelectorAll('mjx-container[display="true"]'))
    .filter(el => el.scrollWidth > el.parentElement.clientWidth + 2
                  || el.getBoundingClientRect().right > columnRight + 2)
    .map(el => (el.textContent || '').trim().slice(0, 80));
  return {
    tooWide,
    mathjax: MJ && MJ.version ? MJ.version : null,
    formulas: mathNodes.length,
    untypeset, mathErrors, rawLeft,
    images: images.length,
    brokenImages: images.filter(img => !(img.complete && img.naturalWidth > 0))
      .map(img => img.getAttribute('src')),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  };
}
"""


@pytest.mark.parametrize("page_path", book_pages())
def test_page(page_path, book_url, browser):
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()

    def offline_only(route):
        if urlsplit(route.request.url).netloc == urlsplit(book_url).netloc:
            route.continue_()
        else:
            problems.append(f"requests a resource outside the book: {route.request.url}")
            route.abort()

    page.route("**/*", offline_only)
    page.on(
        "console",
        lambda msg: msg.type == "error" and problems.append(f"console error: {msg.text}"),
    )
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "requestfailed",
        lambda req: problems.append(f"failed to load {req.url}: {req.failure}"),
    )
    try:
        page_url = f"{book_url}/{page_path}"
        response = page.goto(page_url, wait_until="load", timeout=60_000)
        if response is None or not response.ok:
            problems.append(f"HTTP {response.status if response else 'no response'}")
        redirect = anchors_in(HTML_DIR / page_path).refresh
        if redirect:  # index.html is a redirect to the root page: check where it lands
            target = urljoin(page_url, redirect)
            if why := broken_link(target, book_url):
                problems.append(f"redirects to a missing page: {why}")
            else:
                page.wait_for_url(target, wait_until="load", timeout=60_000)
                print(f"\n  {page_path} redirects to {redirect}", end="")
        report = page.evaluate(INSPECT_PAGE, RAW_TEX)
    finally:
        context.close()

    problems += [f"formula not typeset by MathJax: {tex}" for tex in report["untypeset"]]
    problems += [f"MathJax error in: {tex}" for tex in report["mathErrors"]]
    problems += [f"formula wider than the text column: {tex}" for tex in report["tooWide"]]
    problems += [f"raw LaTeX left in the text: {text}" for text in report["rawLeft"]]
    problems += [f"image did not load: {src}" for src in report["brokenImages"]]
    links = sorted(set(report["links"]))
    problems += [why for href in links if (why := broken_link(href, book_url)) is not None]
    if report["formulas"] and not report["mathjax"]:
        problems.append("page has formulas but MathJax did not start")

    print(
        f"\n  checked {page_path}: {report['formulas']} formulas"
        f" (MathJax {report['mathjax'] or '-'}), {report['images']} images, {len(links)} links"
        f" -> {'OK' if not problems else f'{len(problems)} problems'}"
    )
    problems = list(dict.fromkeys(problems))
    shown = problems[:MAX_SHOWN] + [f"... and {len(problems) - MAX_SHOWN} more"] * (
        len(problems) > MAX_SHOWN
    )
    assert not problems, f"{page_path}: {len(problems)} problems\n  " + "\n  ".join(shown)
