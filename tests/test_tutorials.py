"""Tutorials that cannot rot: every docs page's ```python blocks run, in order, as one
program (snippets of examples/ expanded as MkDocs does); every examples/ script runs
from a shell outside the source tree. A new page or script is a new test."""
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from mktestdocs import grab_code_blocks

from gflownet.environments import ENVIRONMENTS

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = re.compile(r'^(?P<indent>[ \t]*)--8<-- "(?P<path>[^":]+)(?::(?P<section>[\w-]+))?"[ \t]*$', re.M)


def section(path: str, name: str | None) -> str:
    """The lines of ``path`` (between ``--8<-- [start:name]`` and ``[end:name]`` when named),
    marker lines dropped: what pymdownx.snippets inserts."""
    lines = (ROOT / path).read_text().splitlines()
    if name:
        start = lines.index(next(line for line in lines if line.endswith(f"--8<-- [start:{name}]")))
        end = lines.index(next(line for line in lines if line.endswith(f"--8<-- [end:{name}]")))
        lines = lines[start + 1:end]
    return "\n".join(line for line in lines if "--8<-- [" not in line)


def expand_snippets(markdown: str) -> str:
    return SNIPPET.sub(lambda m: section(m["path"], m["section"]), markdown)


def python_blocks(page: Path) -> list[str]:
    return grab_code_blocks(expand_snippets(page.read_text()), lang="python")


PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if python_blocks(p))
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_the_collector_finds_the_tutorials():
    assert {"own-environment.md", "python-api.md"} <= {p.name for p in PAGES}
    assert {"beads.py", "hypergrid_api.py"} <= {p.name for p in EXAMPLES}


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT / "docs")) for p in PAGES])
def test_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ and other outputs land in a scratch folder
    source = "\n".join(python_blocks(page))
    with mock.patch.dict(ENVIRONMENTS):  # a page may register its own environment
        exec(compile(source, str(page), "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # one core, as the rest of the suite
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip()  # every example reports what it found
