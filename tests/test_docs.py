"The offline docs site builds, and headless Chromium renders its pages with their figures."
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

pytestmark = pytest.mark.xdist_group(name='docs')   # one worker builds the site once (run with --dist loadgroup)
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = shutil.which('chromium'), shutil.which('chromedriver')
SHOTS = ROOT/'_docs'/'screenshots'

@pytest.fixture(scope='module')
def site():
    from filelock import FileLock                       # a second xdist worker must not build into the same folders
    with FileLock(str(ROOT/'.docs-build.lock')):
        r = subprocess.run([sys.executable, 'tools/build_docs.py'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return ROOT/'_docs'

def test_every_notebook_has_a_page(site):
    for nb in (ROOT/'nbs').glob('[!_.]*.ipynb'):
        assert (site/f'{nb.stem}.html').exists(), f'no page for {nb.name}'
    html = (site/'01_data.html').read_text()
    for expected in ('PackedBlocks', 'prepare_data', 'test_eq(', 'data_levels'):   # API docs, test cells, figure
        assert expected in html, f'01_data.html lacks {expected!r}'

@pytest.fixture(scope='module')
def browser():
    if not (CHROMIUM and DRIVER):
        if os.environ.get('HIERLM_REQUIRE_BROWSER'): pytest.fail('chromium / chromedriver not installed (apt-get install chromium chromium-driver)')
        pytest.skip('chromium / chromedriver not installed')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-sync',
              '--disable-background-networking', '--disable-component-update', '--window-size=1280,2000',
              '--allow-file-access-from-files'):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield drv
    drv.quit()

def loaded_images(drv):
    return drv.execute_script("return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")

def nonblank(png: Path):
    from PIL import Image
    im = Image.open(png).convert('L')
    lo, hi = im.getextrema()
    return hi - lo > 100

@pytest.mark.parametrize('page,title,min_images', [('index.html', 'hierlm', 2), ('01_data.html', 'data', 1), ('02_masks.html', 'masks', 1)])
def test_page_renders_with_figures(site, browser, page, title, min_images):
    SHOTS.mkdir(exist_ok=True)
    browser.get((site/page).as_uri())
    assert title in browser.title.lower(), browser.title
    n = loaded_images(browser)
    assert n >= min_images, f'{page}: {n} images loaded, expected at least {min_images}'
    shot = SHOTS/page.replace('.html', '.png')
    assert browser.save_screenshot(str(shot)) and nonblank(shot)
