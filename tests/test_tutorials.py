"""Tutorials that cannot rot: every docs page's ```python blocks run, in order, as one
program (snippets of examples/ expanded as MkDocs does). An examples/ script is the
source of a tutorial: its code must be wholly shown by the pages, so running the
pages runs it. A new page is a new test."""

import ast
import re
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
        lines = lines[start + 1 : end]
    return "\n".join(line for line in lines if "--8<-- [" not in line)


def expand_snippets(markdown: str) -> str:
    return SNIPPET.sub(lambda m: section(m["path"], m["section"]), markdown)


def python_blocks(page: Path) -> list[str]:
    return grab_code_blocks(expand_snippets(page.read_text()), lang="python")


PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if python_blocks(p))
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_the_collector_finds_the_tutorials():
    assert {"own-environment.md", "python-api.md", "pretrain-finetune.md", "screen-molecules.md"} <= {
        p.name for p in PAGES
    }
    assert {"beads.py", "hypergrid_api.py", "pretrain_finetune.py", "screen_molecules.py"} <= {p.name for p in EXAMPLES}


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT / "docs")) for p in PAGES])
def test_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ and other outputs land in a scratch folder
    source = "\n".join(python_blocks(page))
    with mock.patch.dict(ENVIRONMENTS):  # a page may register its own environment
        exec(compile(source, str(page), "exec"), {"__name__": "__main__"})


def code_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_run_by_a_page(script):
    body = ast.get_source_segment(text := script.read_text(), ast.parse(text).body[0])  # the module docstring
    shown = set().union(*(code_lines("\n".join(python_blocks(p))) for p in PAGES))
    missing = code_lines(text.replace(body, "")) - shown
    assert not missing, f"{script.name}: include it in a docs page (--8<-- snippets) so its code runs: {missing}"
