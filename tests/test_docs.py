"""The documentation site builds in strict mode (a broken link, snippet or reference fails),
its generated pages follow the code, and it covers every registered name."""

import argparse
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gflownet.cli import parser
from gflownet.environments import ENVIRONMENTS
from gflownet.objectives import OBJECTIVES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_cli_reference_is_generated_from_the_parser(site):
    page = (site / "cli" / "index.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    top = parser()
    (commands,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in commands.choices.items():
        assert f"gflownet {name}" in text
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                assert f"<code>{option}</code>" in page, (name, option)
            assert re.sub(r"`", "", action.help) in text, (name, action.help)


def test_pages_render_code_and_pictures(site):
    tutorial = (site / "tutorials" / "own-environment" / "index.html").read_text()
    assert "Beads" in tutorial and "--8&lt;--" not in tutorial  # the snippets were inserted
    api = (site / "api" / "index.html").read_text()
    for name in ("gflownet.api.train", "gflownet.run.Run.sample", "gflownet.environments.base.Environment"):
        assert f'id="{name}"' in api, name
    assert re.search(
        r'<img alt="Report of a 2-D hypergrid run" src="\.\./assets/report-hypergrid\.png"',
        (site / "report" / "index.html").read_text(),
    )
    results = (site / "results" / "hypergrid" / "index.html").read_text()
    assert "../../experiments/hypergrid_objectives.png" in results
    assert (site / "experiments" / "hypergrid_objectives.png").read_bytes()[:4] == b"\x89PNG"


def test_every_registered_name_has_a_page():
    objective_pages = "".join(p.read_text() for p in (DOCS / "objectives").glob("*.md"))
    for name in OBJECTIVES:
        assert f"`{name}`" in objective_pages, f"objective {name!r}: document it under docs/objectives/"
    environment_pages = "".join(p.read_text() for p in (DOCS / "environments").glob("*.md"))
    for name in ENVIRONMENTS:
        assert f"`{name}`" in environment_pages, f"environment {name!r}: document it under docs/environments/"


def test_getting_started_shows_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(pip install [^\n]+)\n```", readme)[:2]
    assert commands == [
        "pip install torch==2.13.0 -e . && gflownet demo",
        "pip install torch==2.13.0 -e '.[dev]' && python -m pytest",
    ]
    page = (DOCS / "getting-started.md").read_text()
    assert all(f"```bash\n{c}\n```" in page for c in commands)
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_reward_pool_script_of_the_scale_page_runs(tmp_path):
    """The page's ```py block is a whole script (its pool's workers import it), so it runs as one."""
    (script,) = re.findall(r"```py\n(.*?)```", (DOCS / "scale.md").read_text(), re.S)
    (tmp_path / "pool_demo.py").write_text(script)
    done = subprocess.run([sys.executable, "pool_demo.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[1.0, 2.0, 3.0]"
