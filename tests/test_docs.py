"""The offline docs site builds, headless Chromium renders its pages with their figures, and they read like nbdev's.

The site is built once per pytest run, into pytest's temporary folder for the run (shared by its xdist workers):
<basetemp>/docs/ holds _proc/, site/, build.log and screenshots/ (each page screen by screen), usually under
/tmp/pytest-of-$USER/pytest-current/docs/ (pytest keeps the last three runs). HIERLM_DOCS_KEEP=DIR copies the
screenshots to DIR too.
"""
import math, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest

pytestmark = pytest.mark.xdist_group(name='docs')   # with --dist loadgroup, where pytest-xdist honours it
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = shutil.which('chromium'), shutil.which('chromedriver')
WIDTH, SCREEN, MAX_SCREENS = 1280, 1400, 16
SHOT_PAGES = [('index.html', 'hierlm', 2), ('01b_corpora.html', 'corpora', 1), ('02_masks.html', 'masks', 1),
              ('08_bdh.html', 'bdh', 1)]

@pytest.fixture(scope='session')
def out(tmp_path_factory):
    "This run's docs folder: the same for every xdist worker (their own temporary folders share a parent)."
    base = tmp_path_factory.getbasetemp()
    d = (base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base)/'docs'
    d.mkdir(exist_ok=True)
    return d

@pytest.fixture(scope='session')
def site(out):
    "The site, built once per run: the first worker here builds it, any other waits for it and reuses it."
    from filelock import FileLock
    log = out/'build.log'
    with FileLock(str(out/'build.lock')):
        if not log.exists():
            cmd = [sys.executable, 'tools/build_docs.py', '--proc', str(out/'_proc'), '--site', str(out/'site')]
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            log.write_text(f'exit status {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}')
    if not log.read_text().startswith('exit status 0\n'):
        pytest.fail(f'tools/build_docs.py failed ({log}):\n{log.read_text()}')
    return out/'site'

def test_every_notebook_has_a_page(site):
    for nb in (ROOT/'nbs').glob('[!_.]*.ipynb'):
        assert (site/f'{nb.stem}.html').exists(), f'no page for {nb.name}'
    for page, expected in [('01b_corpora', ('prepare_data', 'test_eq(', 'data_levels')),   # API docs, tests, figure
                           ('01c_batching', ('PackedBlocks', 'MixtureStream', 'training_data'))]:
        html = (site/f'{page}.html').read_text()
        for e in expected: assert e in html, f'{page}.html lacks {e!r}'

@pytest.fixture(scope='session')
def browser():
    if not (CHROMIUM and DRIVER):
        if os.environ.get('HIERLM_REQUIRE_BROWSER'):
            pytest.fail('chromium / chromedriver not installed (apt-get install chromium chromium-driver)')
        pytest.skip('chromium / chromedriver not installed')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-sync',
              '--disable-background-networking', '--disable-component-update', f'--window-size={WIDTH},{SCREEN}',
              '--allow-file-access-from-files', '--hide-scrollbars'):
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

def screenshots(drv, page: str, shots: Path) -> list[Path]:
    "The page screen by screen, top to bottom (at most MAX_SCREENS screens), as PNGs in `shots`."
    shots.mkdir(exist_ok=True)
    drv.execute_script("document.head.insertAdjacentHTML('beforeend', "       # no header caught mid-animation
                       "'<style>*{transition:none!important;animation:none!important}</style>')")
    height = drv.execute_script("return document.documentElement.scrollHeight")
    view = drv.execute_script("return window.innerHeight")
    pngs = []
    for i in range(min(MAX_SCREENS, math.ceil(height / view))):
        drv.execute_script(f"window.scrollTo(0, {i * view})")
        pngs.append(shots/f"{page.removesuffix('.html')}-{i + 1:02d}.png")
        assert drv.save_screenshot(str(pngs[-1])), f'no screenshot of {page}'
    if keep := os.environ.get('HIERLM_DOCS_KEEP'):
        Path(keep).mkdir(parents=True, exist_ok=True)
        for p in pngs: shutil.copy(p, keep)
    return pngs

@pytest.mark.parametrize('page,title,min_images', SHOT_PAGES)
def test_page_renders_with_figures(site, out, browser, record_property, page, title, min_images):
    browser.get((site/page).as_uri())
    assert title in browser.title.lower(), browser.title
    n = loaded_images(browser)
    assert n >= min_images, f'{page}: {n} images loaded, expected at least {min_images}'
    pngs = screenshots(browser, page, out/'screenshots')
    record_property('screenshots', str(out/'screenshots'))
    print(f'screenshots of {page}: {pngs[0].parent}/{pngs[0].stem[:-3]}-*.png')
    assert pngs and all(nonblank(p) for p in pngs), f'{page}: blank screenshot among {pngs}'

# What a page shows, from the DOM: visible text only (hidden copies, like the clipboard's text, do not count).
PAGE_JS = """
const vis = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
const all = s => Array.from(document.querySelectorAll(s)).filter(vis);
const media = 'img, svg, canvas, iframe, video, table';
return {
  text: document.querySelector('.md-content').innerText,
  inputs: all('.jp-CodeCell .jp-InputArea pre').map(e => e.innerText),
  outputs: all('.jp-OutputArea-output').map(e => ({mime: e.dataset.mimeType || '', text: e.innerText,
                                                  media: e.matches(media) || !!e.querySelector(media)})),
  prompts: all('.jp-InputPrompt, .jp-OutputPrompt').map(e => e.innerText.trim()).filter(t => t),
  scrolled: all('.md-content pre, .md-content .highlight-ipynb, .md-content .jp-RenderedText')
    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText.split('\\n')[0]),
};
"""

@pytest.fixture(scope='session')
def pages(site, browser):
    "What every notebook's page shows, by page name."
    res = {}
    for nb in sorted((ROOT/'nbs').glob('[!_.]*.ipynb')):
        browser.get((site/f'{nb.stem}.html').as_uri())
        res[nb.stem] = browser.execute_script(PAGE_JS)
    return res

def offenders(pages, found) -> list[str]:
    "`page: first offending line` for every page where `found(page_info)` returns offending texts."
    return [f'{p}: {str(t).strip().splitlines()[0][:150] if str(t).strip() else repr(t)}' for p, info in pages.items()
            for t in found(info)]

def lines_matching(texts, pattern):
    "The lines of `texts` that match the regex `pattern`."
    return [l for t in texts for l in t.splitlines() if re.search(pattern, l)]

# Rendering: what nbdev's quarto sites hide or render, the build must too.
def test_no_hidden_source_shown(pages):
    bad = offenders(pages, lambda i: lines_matching(i['inputs'], r'^\s*#\||^\s*show_doc\('))
    assert not bad, 'code cells show directives (`#| echo: false`) or show_doc calls:\n' + '\n'.join(bad)

def test_no_empty_outputs(pages):
    bad = offenders(pages, lambda i: [o['mime'] for o in i['outputs'] if not o['text'].strip() and not o['media']])
    assert not bad, 'empty output boxes (page: mime type):\n' + '\n'.join(bad)

def test_no_quarto_link_attributes(pages):
    bad = offenders(pages, lambda i: lines_matching([i['text']], r'\{(target|style|class)=|\{\.[\w-]+[ }]'))
    assert not bad, 'quarto link attributes printed as text:\n' + '\n'.join(bad)

def test_no_main_module_names(pages):
    bad = offenders(pages, lambda i: lines_matching([o['text'] for o in i['outputs']], r'__main__\.'))
    assert not bad, '`__main__.` names instead of module names:\n' + '\n'.join(bad)

def test_no_prompts(pages):
    bad = offenders(pages, lambda i: i['prompts'] + lines_matching([i['text']], r'^\s*(In|Out)\s*\[[\d ]*\]:'))
    assert not bad, 'notebook prompts (In [ ]: / Out[n]:) shown:\n' + '\n'.join(bad)

def test_code_wraps_without_scrollbars(pages):
    bad = offenders(pages, lambda i: i['scrolled'])
    assert not bad, 'code or output wider than the page, behind a scrollbar:\n' + '\n'.join(bad)

# Output noise: saved outputs that are the run's bookkeeping, not documentation (fixed in the notebooks themselves).
def output_lines(info, pattern, mimes=None):
    "The first line matching `pattern` in each output (of the `mimes` types, or any) of a page."
    outs = [o['text'] for o in info['outputs'] if mimes is None or o['mime'] in mimes]
    return [m[0] for m in (lines_matching([t], pattern) for t in outs) if m]

STDERR = {'application/vnd.jupyter.stderr'}

def test_no_wandb_output(pages):
    bad = offenders(pages, lambda i: output_lines(i, r'^\s*wandb:|\bwandb (version|sync|offline)\b'))
    assert not bad, 'wandb output in saved outputs:\n' + '\n'.join(bad)

def test_no_progress_bars(pages):
    bar = r'\d+%\|[^|\n]*\||\d+(\.\d+)?\s*(it|s)/(s|it)\]|[█▏▎▍▌▋▊▉]{3}'  # tqdm: 40%|####  | 2/5 [00:01, 1.5it/s]
    bad = offenders(pages, lambda i: output_lines(i, bar))
    assert not bad, 'progress bars in saved outputs:\n' + '\n'.join(bad)

def test_no_warnings_in_outputs(pages):
    bad = offenders(pages, lambda i: output_lines(i, r'Warning\b', STDERR) or output_lines(i, r'\b\w*Warning: '))
    assert not bad, 'warnings in saved outputs:\n' + '\n'.join(bad)

def test_no_machine_paths_in_outputs(pages):
    bad = offenders(pages, lambda i: output_lines(i, r'(?<![\w.~-])/(work|root|tmp|home|Users|private/var)/'))
    assert not bad, "absolute paths of the machine that saved the outputs:\n" + '\n'.join(bad)
