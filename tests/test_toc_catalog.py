"""The book and actlib agree: every activation has a chapter, every chapter teaches one.

The per-activation chapters live in the parts listed in ``ACTIVATION_PARTS``; each must
be the ``chapter`` of a catalog record (or the hierarchical-softmax chapter) and must
import what it teaches from actlib.
"""

import json
import re
from pathlib import Path

import pytest
import yaml

import actlib
from actlib.catalog import CATALOG

ROOT = Path(__file__).resolve().parents[1]
ACTIVATION_PARTS = (
    "book/squashing", "book/rectifiers", "book/smooth", "book/modern", "book/output"
)
# Chapters about a module rather than a catalog Function.
MODULE_CHAPTERS = {"book/output/hierarchical_softmax": "HierarchicalSoftmax"}


def _toc_files(entry) -> list[str]:
    """All ``file:`` entries of a jb-book table of contents, depth first."""
    if isinstance(entry, list):
        return [f for item in entry for f in _toc_files(item)]
    if not isinstance(entry, dict):
        return []
    files = [entry["file"]] if "file" in entry else []
    if "root" in entry:
        files.append(entry["root"])
    for key in ("parts", "chapters", "sections"):
        files += _toc_files(entry.get(key, []))
    return files


@pytest.fixture(scope="module")
def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [str(Path(f).with_suffix("")) for f in _toc_files(toc)]


def _source(chapter: str) -> str:
    notebook = json.loads((ROOT / f"{chapter}.ipynb").read_text())
    return "\n".join("".join(cell["source"]) for cell in notebook["cells"])


@pytest.mark.parametrize("name", list(CATALOG))
def test_every_activation_has_a_chapter_that_uses_it(name, toc_files):
    record = CATALOG[name]
    assert record.chapter in toc_files, f"{name}: chapter {record.chapter} is not in _toc.yml"
    assert f"actlib.{name}" in _source(record.chapter), (
        f"{record.chapter} does not use actlib.{name}"
    )


def test_every_activation_chapter_teaches_something_in_actlib(toc_files):
    taught = {record.chapter for record in CATALOG.values()} | set(MODULE_CHAPTERS)
    chapters = [f for f in toc_files if f.startswith(ACTIVATION_PARTS)]
    assert chapters, "no per-activation chapters found in _toc.yml"
    orphans = [chapter for chapter in chapters if chapter not in taught]
    assert not orphans, f"chapters with no activation in actlib.catalog: {orphans}"


@pytest.mark.parametrize("chapter, name", MODULE_CHAPTERS.items())
def test_module_chapters_use_their_module(chapter, name, toc_files):
    assert chapter in toc_files
    assert hasattr(actlib, name), f"actlib has no {name}"
    uses = rf"actlib(\.\w+)*\.{name}\b|from actlib(\.\w+)* import [^\n]*\b{name}\b"
    assert re.search(uses, _source(chapter)), f"{chapter} does not import {name} from actlib"


def test_every_toc_entry_exists(toc_files):
    missing = [
        f for f in toc_files if not any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb"))
    ]
    assert not missing, f"_toc.yml names files that do not exist: {missing}"
