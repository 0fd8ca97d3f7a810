"""`make docs` builds the documentation site offline: every notebook executed at smoke scale, one
page each with its figures, and an index page. Built once here, into a temporary folder, with the
build's own outputs folder."""
import re
import pytest
from conftest import ROOT

NBS = sorted(p.stem for p in (ROOT / "nbs").glob("0*.ipynb"))
# 03's lesson figures: (what the page must mention, the figure file 03 writes in its stage folder)
FIGURES_03 = {"forward": r"forward_noising\.png", "schedule": r"(alpha_bar|schedule)\w*\.png",
              "training": r"training_curve\.png", "sample": r"samples\.png"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "The site built by `build_docs`, and the outputs folder of its smoke run."
    from cxr_nbdev.pipeline import build_docs
    tmp = tmp_path_factory.mktemp("docs")
    return build_docs(tmp / "_docs", tmp / "_docs_run"), tmp / "_docs_run"


def test_every_notebook_has_a_page(site):
    dest, _ = site
    missing = [n for n in [*NBS, "index"] if not (dest / f"{n}.html").is_file()]
    assert not missing, f"no page for {missing} in {dest}"
    for n in NBS:  # each page links to every other one
        html = (dest / f"{n}.html").read_text()
        assert all(f'href="{m}.html"' in html for m in NBS), f"{n}.html lacks the links to the pages"


def test_03_page_shows_its_figures(site):
    dest, run = site
    html = (dest / "03_ddpm.html").read_text()
    imgs = len(re.findall(r"<img[^>]+src=\"data:image/png", html))
    assert imgs >= len(FIGURES_03), f"03_ddpm.html shows {imgs} figures, expected >= {len(FIGURES_03)}"
    files = [p.name for p in (run / "smoke" / "03_ddpm").glob("*.png")]
    for word, pattern in FIGURES_03.items():
        assert word in html.lower(), f"03_ddpm.html never mentions {word!r}"
        assert any(re.fullmatch(pattern, f) for f in files), \
            f"03_ddpm wrote no {pattern} figure in the docs run (it wrote {sorted(files)})"


def test_index_tells_the_story(site):
    dest, _ = site
    html = (dest / "index.html").read_text()
    assert "The smoke run in figures" in html, "index.html lacks the story section"
    shown = re.findall(r'<img[^>]+src="figures/([^"]+)"', html)
    assert any(f.startswith("03_ddpm_") for f in shown), f"index.html shows no 03 figure: {shown}"
    assert all((dest / "figures" / f).is_file() for f in shown), f"a figure of index.html is missing"


def test_docs_run_keeps_out_of_outputs(site):
    "The build's stages wrote to its own outputs folder."
    _, run = site
    assert (run / "smoke" / "03_ddpm" / "done.json").is_file(), f"no 03 run in {run}"
