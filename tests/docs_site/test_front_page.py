"""README.md, the project's front page: its links resolve, the Python versions it states
agree with the package metadata and the docs, its benchmark line is the one ``make bench``
writes, and it carries none of the project's internal bookkeeping.

The README's two-file app runs in Chromium in ``test_two_file_apps.py``.
"""

from __future__ import annotations

import configparser
import json
import re

from bench.report import README_END, README_START, aggregate, render_readme
from tests.docs_examples import DOCS, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def supported_pythons() -> list[str]:
    """The ``3.N`` versions of setup.cfg's classifiers, in order."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    classifiers = config["metadata"]["classifiers"]
    found = re.findall(r"Programming Language :: Python :: (3\.\d+)$", classifiers, re.M)
    return sorted(found, key=lambda version: int(version.split(".")[1]))


def test_front_page_states_the_supported_pythons_everywhere():
    versions = supported_pythons()
    assert versions, "setup.cfg lists no Python 3.N classifier"
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    assert config["options"]["python_requires"] == f">={versions[0]}"
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini", encoding="utf-8")
    envs = [env.strip() for env in tox["tox"]["envlist"].split(",")]
    assert envs == ["py" + version.replace(".", "") for version in versions]
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'python_version = "{versions[0]}"' in pyproject
    assert f'target-version = "py{versions[0].replace(".", "")}"' in pyproject

    stated = "Python " + ", ".join(versions[:-1]) + " or " + versions[-1]
    for page, text in (("README.md", README), ("docs/index.md", (DOCS / "index.md").read_text())):
        assert stated in text, f"{page} does not say {stated!r}"
    # Nowhere else a version the package does not claim (the benchmarks page records the
    # Python of the machine that measured, a fact of that run).
    pages = {"README.md": README}
    pages |= {
        f"docs/{p.name}": p.read_text() for p in DOCS.glob("*.md") if p.name != "benchmarks.md"
    }
    for page, text in pages.items():
        others = set(re.findall(r"Python (3\.\d+)", text)) - set(versions)
        assert not others, f"{page} names Python {sorted(others)}, not in setup.cfg"


def test_front_page_keeps_the_two_set_up_commands():
    assert "make run    # creates .venv" in README
    assert "make test   # creates .venv" in README
    assert "make run PORT=9000" in README
    assert ".venv/bin/uvicorn app:app" in README and "pip install -e" in README


def test_front_page_has_no_internal_bookkeeping():
    text = re.sub(r"\]\([^)]*\)", "]", README)  # link targets may hold anchors
    assert not re.search(r"(?<![\w&])#\d+\b", text), "an issue number on the front page"
    assert "**missed**" not in text  # the goals and their status live in docs/benchmarks.md
    assert "| status |" not in text
    assert "load average" not in text.lower()


def test_front_page_links_resolve():
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [target for target in targets if "://" not in target]
    assert "docs/benchmarks.md" in local and "docs/realtime.md" in local
    missing = [target for target in local if not (ROOT / target).exists()]
    assert missing == []


def test_front_page_benchmark_line_is_what_make_bench_writes():
    start, end = README.index(README_START), README.index(README_END)
    block = README[start : end + len(README_END)]
    lines = block.split("\n")
    assert len(lines) == 3  # the markers around one line
    assert "[docs/benchmarks.md](docs/benchmarks.md)" in lines[1]
    data = json.loads((ROOT / "bench/results/results.json").read_text(encoding="utf-8"))
    assert render_readme(data, aggregate(data)) == block
