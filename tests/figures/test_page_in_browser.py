"""inspect/index.html of a real run, opened in headless Chromium: every figure loads, the page renders.

Chromium is Debian's package (setup.sh installs it as root or with sudo). A page
with a broken image is the negative control: the same check must fail on it.
"""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As the machine's notes say: no sandbox as root, no GPU, and nothing that reaches for the network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Appended to a copy of the page: after the load event, each image's source and natural width.
PROBE = ("<script>window.addEventListener('load', () => document.body.setAttribute('data-images', "
         "[...document.images].map(i => i.getAttribute('src') + '=' + i.naturalWidth).join(' ')));</script>")

pytestmark = pytest.mark.slow


def _chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: `sudo apt-get install chromium` (bash setup.sh does it as root)")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=180)


def broken_images(page, tmp_path) -> list[str]:
    """The <img> sources of `page` that did not load (naturalWidth 0) in Chromium; ['<no page>'] if it did not load."""
    probe = page.parent / f".probe-{page.name}"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        dom = _chromium(tmp_path, "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()).stdout
    finally:
        probe.unlink()
    match = re.search(r'data-images="([^"]*)"', dom)
    if match is None:
        return ["<no page>"]
    images = [item.rsplit("=", 1) for item in match.group(1).split()]
    return [src for src, width in images if int(width) == 0] if images else ["<no images>"]


def screenshot(page, tmp_path, name) -> np.ndarray:
    path = tmp_path / f"{name}.png"
    _chromium(tmp_path, f"--screenshot={path}", "--window-size=1200,2400", "--virtual-time-budget=15000",
              page.as_uri())
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """inspect/index.html of a smoke run, made by the real commands."""
    workdir = tmp_path_factory.mktemp("run")
    env = dict(os.environ, PYTHONPATH=REPO)
    for command in (["aejax.main", "--config=experiments/beta_vae.py:smoke", f"--workdir={workdir}"],
                    ["aejax.inspect", f"--workdir={workdir}", "--noumap", "--scatter_points=100"]):
        result = subprocess.run([sys.executable, "-m", *command], cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    return workdir / "inspect" / "index.html"


def test_every_figure_of_the_page_loads_in_chromium(page, tmp_path):
    assert len(re.findall(r"<img ", page.read_text())) >= 6
    assert broken_images(page, tmp_path) == []


def test_a_page_with_a_broken_image_fails_the_same_check(page, tmp_path):
    broken = page.parent / "broken.html"
    broken.write_text(page.read_text().replace('src="traversals.png"', 'src="no_such_figure.png"', 1))
    assert broken_images(broken, tmp_path) == ["no_such_figure.png"]


def test_the_page_renders_its_figures(page, tmp_path):
    shot = screenshot(page, tmp_path, "page")
    assert shot.shape[:2] == (2400, 1200)
    # Without its figures (every image source broken) the same page draws far less.
    bare = page.parent / "bare.html"
    bare.write_text(re.sub(r'src="[^"]+"', 'src="missing.png"', page.read_text()))
    without = screenshot(bare, tmp_path, "bare")
    ink = lambda image: np.mean((image < 240).any(axis=-1))  # noqa: E731
    assert ink(shot) > 0.05 and ink(shot) > 2 * ink(without), (ink(shot), ink(without))
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 100  # grey levels and the scatter's colours
