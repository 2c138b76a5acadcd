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
  127.0.0.1 (the book must work offline: MathJax is served from ``_static/mathjax``, Plotly
  from ``_static/plotly``);
* the page with everything it loads stays under 5 MB (:data:`MAX_PAGE_BYTES`), counted as
  a reader's browser downloads it from a server that compresses (GitHub Pages, nginx,
  ``python -m http.server`` does not): the gzip size (level 6) of the body of every response
  the page received, itself included, once its interactive figures are drawn. The
  uncompressed total is printed beside it (the theme's scripts, fonts and MathJax alone
  are 4.4 MB of it on every page).

Every page with an interactive figure (an element ``div.actlib-explorer``, written by
``actlib/explorer.py``; found in the built HTML, so a chapter's live figure is covered as
soon as it is added) is driven as a reader would: for each visible slider the test presses
an arrow key, asserts that the drawn f and f′ changed and that points of the new curves
equal actlib's values for the new parameter (computed here, in float64), then switches
to float16 and compares with actlib in float16; on the explorer page it also ticks
another activation.

Run with ``make browser-check`` (after ``make book-from-outputs`` or ``make book``).
"""

from __future__ import annotations

import functools
import gzip
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
MAX_PAGE_BYTES = 5_000_000  # "each page stays under 5 MB" (decimal megabytes)
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


# Waits until the page's interactive figures are drawn (they load Plotly on demand), then
# returns the uncompressed bytes of the page and every resource it loaded.
PAGE_BYTES = """
async () => {
  const roots = Array.from(document.querySelectorAll('div.actlib-explorer'));
  const start = Date.now();
  while (roots.some(root => !root.dataset.ready) && Date.now() - start < 30000) {
    await new Promise(done => setTimeout(done, 100));
  }
  return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
    .reduce((sum, entry) => sum + (entry.decodedBodySize || 0), 0);
}
"""


def gzipped_size(response) -> int:
    """The bytes of ``response``'s body as a compressing server would send it (gzip -6)."""
    try:
        body = response.body()
    except Exception:  # a redirect or an aborted request has no body
        return 0
    return len(gzip.compress(body, compresslevel=6))


def offline_page(browser, book_url: str, problems: list[str]):
    """A new 1280 px wide page that aborts, and records in ``problems``, any request outside
    the book's server, and records console errors and uncaught script errors."""
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
    return context, page


@pytest.mark.parametrize("page_path", book_pages())
def test_page(page_path, book_url, browser):
    problems: list[str] = []
    context, page = offline_page(browser, book_url, problems)
    responses = []
    page.on("response", lambda response: responses.append(response))
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
        page_bytes = page.evaluate(PAGE_BYTES)
        gzip_bytes = sum(gzipped_size(response) for response in responses)
    finally:
        context.close()
    if gzip_bytes > MAX_PAGE_BYTES:
        problems.append(
            f"the page loads {gzip_bytes / 1e6:.2f} MB gzip-compressed, over "
            f"{MAX_PAGE_BYTES / 1e6:g} MB ({page_bytes / 1e6:.2f} MB uncompressed)"
        )

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
        f" (MathJax {report['mathjax'] or '-'}), {report['images']} images, {len(links)} links,"
        f" {gzip_bytes / 1e6:.2f} MB gzip ({page_bytes / 1e6:.2f} MB uncompressed)"
        f" -> {'OK' if not problems else f'{len(problems)} problems'}"
    )
    problems = list(dict.fromkeys(problems))
    shown = problems[:MAX_SHOWN] + [f"... and {len(problems) - MAX_SHOWN} more"] * (
        len(problems) > MAX_SHOWN
    )
    assert not problems, f"{page_path}: {len(problems)} problems\n  " + "\n  ".join(shown)


# ---------------------------------------------------------------------------------------
# The interactive figures (actlib/explorer.py, book/_static/actlib-explorer.js)
# ---------------------------------------------------------------------------------------


def interactive_pages() -> list[str]:
    """The built pages that hold an interactive figure: ``<div class="actlib-explorer"``."""
    return [
        page
        for page in book_pages()
        if (HTML_DIR / page).is_file()
        and '<div class="actlib-explorer"' in (HTML_DIR / page).read_text(encoding="utf-8")
    ]


# What the figure in `root` draws now: per curve (f, f′) the lines, with the meta that the
# script attaches (activation, parameters, dtype) and their y.
DRAWN = """
(root) => {
  const out = {draws: Number(root.dataset.draws || 0), x: null, curves: {}};
  for (const graph of root.querySelectorAll('.actlib-explorer-plot')) {
    const lines = (graph.data || []).filter(t => t.meta && !t.meta.marks);
    out.curves[graph.dataset.curve] = lines.map(t => ({meta: t.meta, y: t.y}));
    if (lines.length) out.x = lines[0].x;
  }
  return out;
}
"""

CHECKED_X = (-3.0, -1.5, -0.625, 0.375, 1.25, 2.5, 4.0)  # grid points away from the kinks


def _line(drawn, curve, activation):
    lines = [t for t in drawn["curves"].get(curve, []) if t["meta"]["activation"] == activation]
    assert len(lines) == 1, f"{len(lines)} {curve} lines of {activation} drawn"
    return lines[0]


def _check_against_actlib(drawn, activation, problems, where):
    """The drawn f and f′ of ``activation`` at CHECKED_X equal actlib's (float64, or the dtype)."""
    import torch

    from actlib import explorer

    index = [drawn["x"].index(x) for x in CHECKED_X]
    for curve in ("f", "df"):
        line = _line(drawn, curve, activation)
        params, dtype = line["meta"]["params"], line["meta"]["dtype"]
        exact = explorer.evaluate(activation, dtype, x=CHECKED_X, **params)[curve == "df"]
        truth = explorer.evaluate(activation, torch.float64, x=CHECKED_X, **params)[curve == "df"]
        shown = torch.tensor([line["y"][i] for i in index], dtype=torch.float64)
        # The page's decimal reads back as actlib's number in that dtype, and is within a
        # few roundings in that dtype of actlib in float64 (f′ may be computed from the
        # rounded output, σ′ = σ(1 − σ): an error of eps·σ rather than eps·σ′).
        eps = torch.finfo(getattr(torch, dtype)).eps
        same = torch.equal(shown.to(getattr(torch, dtype)), exact.to(getattr(torch, dtype)))
        close = bool(((shown - truth).abs() <= 4 * eps * (truth.abs() + 0.25) + 1e-6).all())
        if not (same and close):
            problems.append(
                f"{where}: drawn {curve} of {activation} {params} in {dtype} at x = {CHECKED_X}"
                f" is {shown.tolist()}, actlib gives {exact.tolist()} (float64 {truth.tolist()})"
            )


@pytest.mark.parametrize("page_path", interactive_pages() or ["(no interactive page built)"])
def test_interactive_figures(page_path, book_url, browser):
    if page_path.startswith("("):
        pytest.fail("no built page holds an interactive figure (book/explorer.ipynb has two)")
    problems: list[str] = []
    context, page = offline_page(browser, book_url, problems)
    moved = 0
    try:
        page.goto(f"{book_url}/{page_path}", wait_until="load", timeout=60_000)
        roots = page.locator("div.actlib-explorer")
        assert roots.count() > 0, "the built HTML has a figure but the page shows none"
        for r in range(roots.count()):
            root = roots.nth(r)
            name = root.get_attribute("id")
            page.wait_for_function(
                "(root) => root.dataset.ready", arg=root.element_handle(), timeout=30_000
            )
            if root.get_attribute("data-ready") != "1":
                problems.append(f"{name}: the figure did not draw (Plotly not loaded?)")
                continue
            sliders = root.locator("input[type=range]:visible")
            assert sliders.count() > 0, f"{name}: no visible slider"
            for s in range(sliders.count()):
                slider = sliders.nth(s)
                activation = slider.get_attribute("data-activation")
                parameter = slider.get_attribute("data-parameter")
                before = root.evaluate(DRAWN)
                at_end = slider.input_value() == slider.get_attribute("max")
                slider.focus()
                page.keyboard.press("ArrowLeft" if at_end else "ArrowRight")
                page.wait_for_function(
                    "([root, n]) => Number(root.dataset.draws) > n",
                    arg=[root.element_handle(), before["draws"]],
                    timeout=10_000,
                )
                after = root.evaluate(DRAWN)
                old = _line(before, "f", activation)
                new = _line(after, "f", activation)
                where = f"{name}, slider {activation}.{parameter}"
                if new["meta"]["params"][parameter] == old["meta"]["params"][parameter]:
                    problems.append(f"{where}: the arrow key did not change {parameter}")
                if new["y"] == old["y"] and _line(after, "df", activation)["y"] == _line(
                    before, "df", activation
                )["y"]:
                    problems.append(f"{where}: the drawn curves did not change")
                _check_against_actlib(after, activation, problems, where)
                moved += 1
            # Another dtype: the same curves now hold actlib's float16 values.
            draws = root.evaluate(DRAWN)["draws"]
            root.locator("input[data-dtype=float16]").check()
            page.wait_for_function(
                "([root, n]) => Number(root.dataset.draws) > n",
                arg=[root.element_handle(), draws],
                timeout=10_000,
            )
            drawn = root.evaluate(DRAWN)
            for line in drawn["curves"]["f"]:
                if line["meta"]["dtype"] != "float16":
                    problems.append(f"{name}: switched to float16 but draws {line['meta']['dtype']}")
                _check_against_actlib(drawn, line["meta"]["activation"], problems, f"{name}, float16")
            if root.get_attribute("data-actlib-explorer") == "explorer":
                # Tick one more activation: its f and f′ appear.
                box = root.locator("input[data-show]:not(:checked)").first
                extra = box.get_attribute("data-show")
                draws = drawn["draws"]
                box.check()
                page.wait_for_function(
                    "([root, n]) => Number(root.dataset.draws) > n",
                    arg=[root.element_handle(), draws],
                    timeout=10_000,
                )
                _check_against_actlib(root.evaluate(DRAWN), extra, problems, f"{name}, ticked {extra}")
    finally:
        context.close()
    print(f"\n  {page_path}: moved {moved} sliders -> {'OK' if not problems else 'problems'}")
    problems = list(dict.fromkeys(problems))
    assert not problems, f"{page_path}: {len(problems)} problems\n  " + "\n  ".join(problems[:MAX_SHOWN])
