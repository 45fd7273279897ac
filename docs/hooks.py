"""MkDocs hooks: pages generated from the code at build time, never copied by hand.

- ``<!-- cli-reference -->`` becomes the reference of every ``gflownet`` subcommand,
  read from the CLI's own argparse parser (``gflownet.cli.parser``).
- ``<!-- parameters -->`` becomes the output of ``gflownet list`` (the registries).
- PNGs under ``experiments/`` are published at the same paths, so results pages
  show the plots the experiment scripts wrote.
- ``build/api-src/gflownet`` is the package laid out as installed (pyproject's
  ``package-dir`` maps ``gflownet.environments`` to ``environments/``, ...), made of
  symbolic links, for mkdocstrings to read the sources statically.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tomllib
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of each subcommand."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]


def _options_table(parser: argparse.ArgumentParser) -> str:
    rows = ["| argument | default | meaning |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}`"
        if action.option_strings and action.nargs != 0:
            name += f" `{action.metavar or action.dest.upper()}`"
        default = "" if action.default in (None, False, [], argparse.SUPPRESS) else f"`{action.default}`"
        rows.append(f"| {name} | {default} | {_cell(action.help or '')} |")
    return "\n".join(rows)


def cli_reference() -> str:
    from gflownet.cli import parser

    top = parser()
    top.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
    parts = [f"```text\n{top.format_usage()}```", _options_table(top)]
    for name, help, sub in _subcommands(top):
        sub.formatter_class = top.formatter_class
        parts += [f"## gflownet {name}", _cell(help), f"```text\n{sub.format_usage()}```", _options_table(sub)]
    return "\n\n".join(parts)


def parameters() -> str:
    from gflownet.cli import main

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        main(["list"])
    return f"```text\n{text.getvalue()}```"


MARKERS = {"<!-- cli-reference -->": cli_reference, "<!-- parameters -->": parameters}


def on_page_markdown(markdown: str, page, config, files) -> str:
    for marker, build in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, build())
    return markdown


def _link_tree(source: Path, target: Path) -> None:
    """Real folders, symbolic links to the files (griffe does not walk linked folders)."""
    for path in source.rglob("*"):
        if "__pycache__" not in path.parts and path.is_file():
            link = target / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)


@event_priority(100)  # before mkdocstrings reads its search paths
def on_config(config):
    tree = ROOT / "build" / "api-src" / "gflownet"
    shutil.rmtree(tree.parent, ignore_errors=True)
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for name, folder in mapping.items():
        _link_tree(ROOT / folder, tree.joinpath(*name.split(".")[1:]))
    return config


def on_files(files, config):
    for png in sorted((ROOT / "experiments").rglob("*.png")):
        files.append(File(str(png.relative_to(ROOT)), str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files
