#!/usr/bin/env python
"""Build the docs site offline into _docs/ (what `nbdev-docs` does with quarto, without quarto).

1. nbdev's doc processors (what `nbdev-proc-nbs` runs before quarto) render nbs/ into _proc/: show_doc output,
   exported and hidden cells removed.
2. What quarto then does is done here: cell directives (`#| echo: false`, `#| output: false`, `#| include: false`)
   hide sources and outputs and are not shown, quarto's link attributes (`[source](url){target="_blank"}`) become
   HTML, `__main__.` in outputs becomes the module the notebook exports to, empty outputs go, the front matter
   becomes the page heading, and links to ../figures/ point at a copy.
3. `mkdocs build` with mkdocs-jupyter renders every notebook into _docs/ (styled by tools/docs.css).

Usage: python tools/build_docs.py [--proc DIR] [--site DIR]     (defaults: _proc/ and _docs/ in the repository)
"""
import argparse, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path
import nbformat, yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
DOC_URL = 'https://hierlm.github.io/hierlm'   # [project.urls] Documentation
CSS = Path(__file__).with_name('docs.css')
DIRECTIVE = re.compile(r'#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')
ATTR_LINK = re.compile(r'\[([^\]\n]*)\]\(([^)\s]+)\)\{([^}\n]*)\}')

def front_matter(nb):
    "The YAML front matter nbdev puts in a raw first cell (title, description), and that cell's index."
    for i, c in enumerate(nb.cells):
        if c.cell_type == 'raw' and c.source.startswith('---'):
            return yaml.safe_load(c.source.strip().strip('-')) or {}, i
    return {}, None

def local_links(text: str, pages: dict) -> str:
    "Point nbdev's doc links (`<doc_url>/data.html#x`, made for the quarto site) at this site's pages."
    base = re.escape(DOC_URL.rstrip('/'))
    return re.sub(base + r'/([\w.-]+)\.html', lambda m: pages.get(m.group(1), m.group(1)) + '.html', text)

def html_link(m) -> str:
    "Quarto's `[text](url){target='_blank' .cls}` as an HTML link: plain markdown would print the braces."
    attrs = re.findall(r'[\w-]+="[^"]*"|[.#][\w-]+', m[3])
    attrs = [f'class="{a[1:]}"' if a[0] == '.' else f'id="{a[1:]}"' if a[0] == '#' else a for a in attrs]
    return f'<a href="{m[2]}" {" ".join(attrs)}>{m[1]}</a>'

def split_directives(src: str):
    "The `#| key: value` directives that open a code cell, as a dict, and the code after them."
    lines = src.splitlines()
    n = next((i for i, l in enumerate(lines) if not l.lstrip().startswith('#|')), len(lines))
    found = [DIRECTIVE.match(l.strip()) for l in lines[:n]]
    return {m[1].lower(): m[2].lower() for m in found if m}, '\n'.join(lines[n:]).strip('\n')

def is_empty(o) -> bool:
    "An output with nothing to show (an empty stream, or only blank data)."
    if o.output_type == 'stream': return not o.text.strip()
    if o.output_type == 'error': return False
    return not any(str(v).strip() for v in o.get('data', {}).values())

def module_of(src_nb: Path) -> str | None:
    "The module a source notebook exports to (`#| default_exp data` -> `hierlm.data`), if any."
    from nbdev.config import get_config
    m = re.search(r'#\|\s*default_exp\s+([\w.]+)', src_nb.read_text(encoding='utf-8'))
    return f'{get_config().lib_name}.{m[1]}' if m else None

def fix_text(text: str, pages: dict, module: str | None) -> str:
    "Doc links to this site, quarto link attributes as HTML, `__main__.` as the notebook's module."
    return local_links(ATTR_LINK.sub(html_link, text), pages).replace('__main__.', f'{module}.' if module else '')

def process(nb_path: Path, pages: dict, module: str | None) -> str:
    "Do in a processed notebook what quarto would do when rendering it; returns the page title."
    nb = nbformat.read(nb_path, as_version=4)
    fm, i = front_matter(nb)
    title = fm.get('title') or nb_path.stem
    if i is not None:
        desc = f"\n\n> {fm['description'].strip()}" if fm.get('description') else ''
        nb.cells[i] = nbformat.v4.new_markdown_cell(f"# {title}{desc}")
    cells = []
    for c in nb.cells:
        c.pop('has_sd', None)                          # nbdev's private marks are not valid nbformat
        c.metadata.pop('execution', None)
        if c.cell_type != 'code':
            if c.cell_type == 'markdown':
                c.source = fix_text(c.source.replace('](../figures/', '](figures/'), pages, module)
            cells.append(c)
            continue
        d, c.source = split_directives(c.source)
        if d.get('include') == 'false' or d.keys() & {'hide', 'export', 'exporti'}: continue
        if d.get('output') == 'false': c.outputs = []
        c.outputs = [o for o in c.outputs if not is_empty(o)]
        for o in c.outputs:
            if 'text' in o: o.text = fix_text(o.text, pages, module)
            for k, v in o.get('data', {}).items():
                if k.startswith('text/'): o.data[k] = fix_text(v if isinstance(v, str) else ''.join(v), pages, module)
        if d.get('echo') == 'false' or not c.source.strip(): c.metadata.setdefault('tags', []).append('remove_input')
        if c.source.strip() or c.outputs: cells.append(c)
    nb.cells = cells
    nbformat.write(nb, nb_path)
    return title

def proc_notebooks(nbs: Path, proc: Path) -> list[Path]:
    "Run nbdev's doc processors (those of `nbdev-proc-nbs`) on the notebooks in `nbs`, writing them into `proc`."
    from fastcore.parallel import parallel
    from nbdev.doclinks import nbglob
    from nbdev.processors import FilterDefaults
    import nbdev.serve_drv
    srcs = nbglob(nbs, func=Path)
    if not srcs: sys.exit(f'no notebooks found in {nbs}')
    jobs = [(s, proc/s.relative_to(nbs), FilterDefaults) for s in srcs]
    for _, dst, _ in jobs: dst.parent.mkdir(parents=True, exist_ok=True)
    parallel(nbdev.serve_drv.main, jobs, n_workers=min(len(jobs), os.cpu_count() or 1), method='spawn', pause=0.01)
    return [d for _, d, _ in jobs]

def build(proc: Path, site: Path):
    "Process the notebooks into `proc` and render them into the site `site`."
    os.chdir(ROOT)                                     # nbdev's processors find the project config from here
    shutil.rmtree(proc, ignore_errors=True)
    srcs = {d.stem: NBS/d.name for d in proc_notebooks(NBS, proc)}
    if (ROOT/'figures').exists(): shutil.copytree(ROOT/'figures', proc/'figures', ignore=shutil.ignore_patterns('.*'))
    shutil.copy(CSS, proc/CSS.name)
    nbs = sorted(proc.glob('*.ipynb'), key=lambda p: (p.stem != 'index', p.stem))
    pages = {re.sub(r'^\d+[a-z]?_', '', p.stem): p.stem for p in nbs}      # nbdev's page name -> notebook
    titles = {p.stem: process(p, pages, module_of(srcs[p.stem])) for p in nbs}
    nav = [{'Home' if p.stem == 'index' else titles[p.stem]: p.name} for p in nbs]
    cfg = yaml.safe_load((ROOT/'mkdocs.yml').read_text())
    cfg.update(docs_dir=str(proc), site_dir=str(site), nav=nav)
    jupyter = next(p['mkdocs-jupyter'] for p in cfg['plugins'] if isinstance(p, dict) and 'mkdocs-jupyter' in p)
    jupyter['cache_dir'] = str(proc.parent/'.cache'/'mkdocs-jupyter')      # its render cache sits next to _proc/
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp)/'mkdocs.yml').write_text(yaml.safe_dump(cfg))
        cmd = [sys.executable, '-m', 'mkdocs', 'build', '--clean', '-q', '-f', str(Path(tmp)/'mkdocs.yml')]
        r = subprocess.run(cmd, env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
    if r.returncode: sys.exit(f'mkdocs build failed (exit status {r.returncode}, its messages are above)')
    print(f"docs: {len(nbs)} pages in {site} (open {site/'index.html'})")

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--proc', type=Path, default=ROOT/'_proc',
                   help='folder for the processed notebooks (default _proc/)')
    p.add_argument('--site', type=Path, default=ROOT/'_docs', help='folder for the site (default _docs/)')
    a = p.parse_args()
    proc, site = a.proc.resolve(), a.site.resolve()
    if proc == site or site in proc.parents or proc in site.parents:
        sys.exit(f'--proc {proc} and --site {site} must be separate folders, neither inside the other')
    build(proc, site)

if __name__ == '__main__': main()
