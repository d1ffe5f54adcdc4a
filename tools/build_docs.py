#!/usr/bin/env python
"""Build the docs site offline into _docs/ (what `nbdev-docs` does with quarto, without quarto).

1. nbdev's `proc_nbs` (the step behind `nbdev-proc-nbs`, minus its quarto install) renders nbs/ into _proc/: show_doc output, hidden cells and directives handled as for quarto.
2. Each notebook's front matter (title, description) becomes its page heading; links to ../figures/ point at a copy.
3. `mkdocs build` with mkdocs-jupyter renders every notebook (prose, API docs, test cells, figures) into _docs/.
"""
import os, re, shutil, subprocess, sys, tempfile
from pathlib import Path
import nbformat, yaml

ROOT = Path(__file__).resolve().parents[1]
DOC_URL = 'https://hierlm.github.io/hierlm'   # [project.urls] Documentation

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

def process(nb_path: Path, pages: dict) -> str:
    "Turn the front matter into a heading and fix figure and doc links; returns the page title."
    nb = nbformat.read(nb_path, as_version=4)
    fm, i = front_matter(nb)
    title = fm.get('title') or nb_path.stem
    if i is not None:
        desc = f"\n\n> {fm['description'].strip()}" if fm.get('description') else ''
        nb.cells[i] = nbformat.v4.new_markdown_cell(f"# {title}{desc}")
    for c in nb.cells:
        c.pop('has_sd', None)                          # nbdev's private marks are not valid nbformat
        c.metadata.pop('execution', None)
        if c.cell_type == 'markdown': c.source = local_links(c.source.replace('](../figures/', '](figures/'), pages)
        for o in c.get('outputs', []):
            if 'text/markdown' in o.get('data', {}): o['data']['text/markdown'] = local_links(o['data']['text/markdown'], pages)
    nbformat.write(nb, nb_path)
    return title

def main():
    proc = ROOT/'_proc'
    shutil.rmtree(proc, ignore_errors=True)
    # nbdev-proc-nbs would first try to download quarto; its processing step alone needs no quarto
    from nbdev.serve import proc_nbs
    proc_nbs(str(ROOT/'nbs'), force=True)
    if (ROOT/'figures').exists(): shutil.copytree(ROOT/'figures', proc/'figures', ignore=shutil.ignore_patterns('.*'))
    nbs = sorted(proc.glob('*.ipynb'), key=lambda p: (p.stem != 'index', p.stem))
    if not nbs: sys.exit('no notebooks were processed into _proc/: is nbs/ empty?')
    pages = {re.sub(r'^\d+[a-z]?_', '', p.stem): p.stem for p in nbs}      # nbdev's page name -> notebook
    titles = {p.stem: process(p, pages) for p in nbs}
    nav = [{'Home' if p.stem == 'index' else titles[p.stem]: p.name} for p in nbs]
    cfg = yaml.safe_load((ROOT/'mkdocs.yml').read_text())
    cfg.update(docs_dir=str(proc), site_dir=str(ROOT/'_docs'), nav=nav)
    with tempfile.NamedTemporaryFile('w', suffix='.yml', dir=ROOT, delete=False) as f: yaml.safe_dump(cfg, f)
    try: subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--clean', '-q', '-f', f.name], cwd=ROOT, check=True)
    finally: Path(f.name).unlink()
    print(f"docs: {len(nbs)} pages in {ROOT/'_docs'} (open _docs/index.html)")

if __name__ == '__main__': main()
