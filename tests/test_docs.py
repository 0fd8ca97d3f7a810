"""`make docs` builds the documentation site offline: every notebook executed at smoke scale, one
page each with its figures, an index page, search and an API reference (mkdocs-material). Built
once here, into a temporary folder, with the build's own outputs folder; the same build is then
checked in Debian's chromium, headless, served by a local static server."""
import functools, http.server, os, re, threading, time, urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse
import pytest
from conftest import ROOT

NBS = sorted(p.stem for p in (ROOT / "nbs").glob("[0-9]*.ipynb"))
PAGES = [re.sub(r"^\d+[a-zA-Z0-9]*_", "", n) for n in NBS]  # nbdev's page names: 03_ddpm -> ddpm
# 03's lesson figures: (what the page must mention, the figure file 03 writes in its stage folder)
FIGURES_03 = {"forward": r"forward_noising\.png", "schedule": r"(alpha_bar|schedule)\w*\.png",
              "training": r"training_curve\.png", "sample": r"samples\.png"}
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900"]


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    """The site built by `build_docs` from the session's executions: the smoke run's stage notebooks and
    the other notebooks (conftest's `other_notebooks`), so no notebook runs again for the docs.
    `(site folder, smoke run folder)`. CXR_DOCS_BUILT=<dir> reuses a `make docs` build (one that holds
    _docs/ and _docs_run/) instead, to rerun these checks."""
    from cxr_nbdev.pipeline import build_docs
    if built := os.environ.get("CXR_DOCS_BUILT"):
        return Path(built) / "_docs", Path(built) / "_docs_run" / "smoke"
    run, r = request.getfixturevalue("smoke_run")
    assert r.returncode == 0, r.stderr[-3000:]
    request.getfixturevalue("other_notebooks")   # executed into <outputs>/notebooks/, run.parent
    tmp = tmp_path_factory.mktemp("docs")
    t0 = time.time()
    dest = build_docs(tmp / "_docs", run.parent, src=tmp / "_proc", run=run)
    print(f"build_docs: {time.time() - t0:.0f} s")
    return dest, run


def test_every_notebook_has_a_page(site):
    dest, _ = site
    missing = [n for n in [*PAGES, "index"] if not (dest / f"{n}.html").is_file()]
    assert not missing, f"no page for {missing} in {dest}"
    for n in PAGES:  # the sidebar links every lesson and every module's API page
        html = (dest / f"{n}.html").read_text()
        assert all(f'href="{m}.html' in html for m in PAGES), f"{n}.html lacks links to the lessons"
        assert f'href="api/{n}.html"' in html, f"{n}.html lacks the link to its API page"


def test_03_page_shows_its_figures(site):
    dest, run = site
    html = (dest / "ddpm.html").read_text()
    imgs = len(re.findall(r"<img[^>]+src=\"data:image/png", html))
    assert imgs >= len(FIGURES_03), f"ddpm.html shows {imgs} figures, expected >= {len(FIGURES_03)}"
    files = [p.name for p in (run / "03_ddpm").glob("*.png")]
    for word, pattern in FIGURES_03.items():
        assert word in html.lower(), f"ddpm.html never mentions {word!r}"
        assert any(re.fullmatch(pattern, f) for f in files), \
            f"03_ddpm wrote no {pattern} figure in the smoke run (it wrote {sorted(files)})"


def test_index_tells_the_story(site):
    dest, _ = site
    html = (dest / "index.html").read_text()
    assert "The smoke run in figures" in html, "index.html lacks the story section"
    shown = re.findall(r'<img[^>]+src="figures/([^"]+)"', html)
    assert any(f.startswith("03_ddpm_") for f in shown), f"index.html shows no 03 figure: {shown}"
    assert all((dest / "figures" / f).is_file() for f in shown), f"a figure of index.html is missing"


def test_stage_pages_are_the_smoke_runs_notebooks(site):
    "A stage's page is its executed notebook from the smoke run: papermill's parameters are folded on it."
    dest, run = site
    html = (dest / "ddpm.html").read_text()
    assert "This run&#39;s parameters (papermill)" in html or "This run's parameters (papermill)" in html
    assert (run / "notebooks" / "03_ddpm.ipynb").is_file()


def test_doclinks_land_on_pages(site):
    "Every link in nbdev's `_modidx.py` names a built page and an anchor on it."
    from cxr_nbdev.pipeline import doc_links
    dest, _ = site
    ids = {}
    bad = []
    for mod, syms in doc_links().items():
        for sym, (link, _) in syms.items():
            page, anchor = link.split("#")
            if page not in ids:
                f = dest / page
                ids[page] = set(re.findall(r'id="([^"]+)"', f.read_text())) if f.exists() else None
            if ids[page] is None or anchor not in ids[page]: bad.append(f"{sym} -> {link}")
    assert not bad, f"{len(bad)} doclinks of _modidx.py land nowhere in {dest}: {bad[:10]}"


def test_api_page_links_the_lesson(site):
    dest, _ = site
    html = (dest / "api" / "diffusion.html").read_text()   # 02a_diffusion defines it
    assert 'id="cxr_nbdev.diffusion.ConditionSchema"' in html, "api/diffusion.html lacks ConditionSchema"
    assert 'href="../diffusion.html#conditionschema"' in html, "api/diffusion.html lacks the lesson link"


# The site in a real browser ------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    missing: list  # the paths answered 404, set per server

    def send_error(self, code, *args, **kwargs):
        if code == 404: self.missing.append(self.path)
        super().send_error(code, *args, **kwargs)

    def log_message(self, *args): pass


@pytest.fixture(scope="module")
def server(site):
    "A local static server of the site: (its base URL, the list of paths it answered 404)."
    dest, _ = site
    missing = []
    handler = type("Handler", (_Handler,), {"missing": missing})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(handler, directory=str(dest)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", missing
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    "Debian's chromium, headless, driven by its chromedriver (`apt-get install chromium chromium-driver`)."
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    assert not missing, f"{missing} not found: apt-get install -y chromium chromium-driver"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]: opts.add_argument(f)
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(check, timeout=30, what="the condition"):
    t0 = time.time()
    while not (value := check()):
        assert time.time() - t0 < timeout, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)
    return value


def test_03_page_in_the_browser(site, server, browser):
    "The 03 page shows its figures, opens on its lesson, and is saved as a screenshot beside the site."
    dest, _ = site
    base, _ = server
    browser.get(base + "ddpm.html")
    imgs = _wait(lambda: browser.execute_script(
        "const i = [...document.querySelectorAll('article img')];"
        "return i.length && i.every(x => x.complete) ? i.map(x => x.naturalWidth) : null"),
        what="the 03 page's images")
    assert sum(w > 0 for w in imgs) >= len(FIGURES_03) and all(w > 0 for w in imgs), \
        f"ddpm.html: images' natural widths {imgs}"
    top = browser.execute_script(  # the lesson's first sentence is in the first screenful
        "const p = [...document.querySelectorAll('article p')]"
        ".find(e => e.textContent.includes('This stage trains the generative model'));"
        "return p ? p.getBoundingClientRect().top : null")
    height = browser.execute_script("return window.innerHeight")
    assert top is not None and top < height, f"the lesson starts at {top} px, below the {height} px view"
    browser.save_screenshot(str(dest / "screenshot_03.png"))
    assert (dest / "screenshot_03.png").stat().st_size > 10_000


def test_search_finds_ddim(server, browser):
    "Searching the site for DDIM lists the 03 page."
    base, _ = server
    browser.get(base + "index.html")
    browser.execute_script("document.getElementById('__search').checked = true")
    box = browser.find_element("css selector", "input.md-search__input")
    _wait(lambda: box.is_displayed(), what="the search box")
    box.send_keys("DDIM")
    t0 = time.time()
    hits = _wait(lambda: browser.execute_script(
        "return [...document.querySelectorAll('.md-search-result__item a')].map(a => a.href)"),
        timeout=60, what="search results for DDIM")
    print(f"search: first hits after {time.time() - t0:.1f} s")
    assert any(urlparse(h).path.endswith("/ddpm.html") for h in hits), f"DDIM hits: {hits[:10]}"


def test_internal_links_resolve(site, server, browser):
    "Every page's internal links, images, scripts and styles load (no 404), and anchors exist."
    dest, _ = site
    base, missing = server
    pages = sorted(str(p.relative_to(dest)) for p in dest.rglob("*.html") if p.name != "404.html")
    refs, seen = {}, set()
    for page in pages:
        browser.get(base + page)
        for href in browser.execute_script(
                "return [...document.querySelectorAll('a[href]')].map(a => a.href)"):
            url, frag = urldefrag(href)
            if url.startswith(base): refs.setdefault(url, set()).add(frag)
    assert not missing, f"the browser met 404s: {sorted(set(missing))[:10]}"
    bad = []
    for url, frags in refs.items():
        try: html = urllib.request.urlopen(url).read().decode("utf-8", "replace")
        except Exception as e:
            bad.append(f"{url}: {e}")
            continue
        ids = set(re.findall(r'id="([^"]+)"', html)) if url.endswith(".html") else set()
        bad += [f"{url}#{f}" for f in frags if f and url.endswith(".html") and f not in ids]
    assert not bad, f"{len(bad)} internal links of {len(pages)} pages resolve nowhere: {bad[:10]}"
