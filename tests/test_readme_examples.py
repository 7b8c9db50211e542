"""Every code block of README.md and docs/*.md runs as written.

Each document runs top to bottom in a fresh folder holding ``ratings.csv``
(MovieLens 100K as ``user,item,rating,timestamp`` when the data are there,
else a small synthetic set with the ids the examples use), its Python
blocks in one namespace, as a reader pasting them in order would:

* ```` ```python ````: executed;
* ```` ```sh ```` (or ``bash``, ``shell``): each line is a ``fastunlearn ...``
  command, run in-process through ``fastunlearn.cli.main`` and required to
  exit 0;
* ```` ```csv NAME ```` (any language followed by a file name): written to
  NAME, so that the commands after it can read it;
* any other fence (``text``, none) is not code.

A block that cannot run here (installs, clusters, benchmark runs) is
preceded by ``<!-- not run: REASON -->``; the tests count those and the
pytest summary reports the count.  Commands outside fenced blocks
(indented code) fail the test, so every command a reader sees is fenced,
hence run or visibly marked.
"""
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import MOVIELENS

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "shell", "console"}
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)\s*(.*)$")
# An indented line that reads as code: it belongs in a fenced block.
COMMAND_LIKE = re.compile(r"^ {4,}(\$ |fastunlearn |pip |python |pytest|import |from \S+ import )")


@dataclass
class Block:
    path: Path
    line: int          # 1-based line of the opening fence
    lang: str
    name: str          # a file name after the language, or ""
    text: str
    not_run: str | None  # the reason, when marked

    @property
    def where(self):
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def parse(path):
    """The fenced blocks of a Markdown file, and the indented lines that look
    like commands (``(line number, text)``)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks, stray = [], []
    i, previous = 0, ""
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if COMMAND_LIKE.match(lines[i]):
                stray.append((i + 1, lines[i].strip()))
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        fence, info = match.groups()
        words = info.split()
        end = i + 1
        while end < len(lines) and not lines[end].startswith(fence):
            end += 1
        marked = NOT_RUN.match(previous)
        blocks.append(Block(path, i + 1, words[0].lower() if words else "",
                            words[1] if len(words) > 1 else "", "\n".join(lines[i + 1:end]) + "\n",
                            marked.group(1) if marked else None))
        previous, i = "", end + 1
    return blocks, stray


def markers(path):
    """Line numbers of every not-run marker and whether a fence follows it."""
    lines = path.read_text(encoding="utf-8").split("\n")
    found = []
    for n, line in enumerate(lines):
        if NOT_RUN.match(line.strip()):
            rest = [x for x in lines[n + 1:] if x.strip()]
            found.append((n + 1, bool(rest) and bool(FENCE.match(rest[0]))))
    return found


def write_ratings(path):
    """``ratings.csv``: MovieLens 100K when present, else a synthetic set of
    the same shape with every id the documents use."""
    if MOVIELENS.exists():
        raw = np.loadtxt(MOVIELENS, dtype=np.int64)
    else:
        from fastunlearn.synthetic import make_ratings

        m = make_ratings(943, 1682, 20_000, seed=0).tocoo()
        users, items = m.row + 1, m.col + 1
        # Every user and item, and the pairs the examples erase.
        extra_u = np.r_[np.arange(1, 944), (np.arange(1682) % 943) + 1, 1, 1, 186, 186]
        extra_i = np.r_[(np.arange(943) % 1682) + 1, np.arange(1, 1683), 1, 2, 302, 566]
        ratings = np.r_[np.clip(np.rint(m.data), 1, 5), np.full(len(extra_u), 3.0)]
        raw = np.column_stack([np.r_[users, extra_u], np.r_[items, extra_i],
                               ratings.astype(np.int64), np.zeros(len(ratings), np.int64)])
    with open(path, "w") as fh:
        fh.write("user,item,rating,timestamp\n")
        np.savetxt(fh, raw[:, :4], fmt="%d", delimiter=",")


@pytest.fixture(scope="module")
def ratings_text(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    write_ratings(path)
    return path.read_bytes()


def run_shell(block, capsys):
    from fastunlearn.cli import main

    for offset, line in enumerate(block.text.splitlines(), start=1):
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        where = f"{block.path.relative_to(ROOT)}:{block.line + offset}"
        assert argv[0] == "fastunlearn", (
            f"{where}: {line!r} is not a fastunlearn command; mark the block "
            "<!-- not run: why --> or run it some other way")
        status = main(argv[1:])
        _, err = capsys.readouterr()
        assert status == 0, f"{where}: {line!r} exited {status}: {err.strip()}"


def run_document(path, tmp_path, monkeypatch, capsys, ratings_text):
    blocks, stray = parse(path)
    assert not stray, (f"{path.name}: commands outside fenced blocks (fence them, so "
                       f"that they run here or are marked 'not run'): {stray}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ratings.csv").write_bytes(ratings_text)
    namespace = {"__name__": "__main__"}
    counts = {"run": 0, "not run": 0}
    for block in blocks:
        code = block.lang == "python" or block.lang in SHELL
        if block.not_run is not None:
            assert block.not_run, f"{block.where}: a 'not run' marker needs a reason"
            counts["not run"] += 1
            continue
        if block.name and not code:
            (tmp_path / block.name).write_text(block.text, encoding="utf-8")
        elif block.lang == "python":
            try:
                exec(compile(block.text, block.where, "exec"), namespace)  # noqa: S102 (the examples)
            except Exception as exc:
                raise AssertionError(f"{block.where}: the example raised {exc!r}") from exc
            counts["run"] += 1
        elif block.lang in SHELL:
            run_shell(block, capsys)
            counts["run"] += 1
    return counts


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_document_examples_run(path, tmp_path, monkeypatch, capsys, ratings_text, request):
    if "fastunlearn.ann" in path.read_text(encoding="utf-8"):
        pytest.importorskip("faiss")
        pytest.importorskip("hnswlib")
    counts = run_document(path, tmp_path, monkeypatch, capsys, ratings_text)
    total = getattr(request.config, "_fastunlearn_doc_blocks", {"run": 0, "not run": 0})
    request.config._fastunlearn_doc_blocks = {k: total[k] + counts[k] for k in total}


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_not_run_markers_precede_a_block_and_say_why(path):
    for line, fenced in markers(path):
        assert fenced, f"{path.name}:{line}: a 'not run' marker must come right before a fenced block"
    for block in parse(path)[0]:
        if block.not_run is not None:
            assert len(block.not_run) > 5, f"{block.where}: say why the block is not run"


def test_readme_setup_commands_are_the_ones_ci_runs():
    """The two set-up commands stay as the README states them, and CI's
    entry point runs the test command word for word."""
    blocks = {b.text.strip() for b in parse(ROOT / "README.md")[0] if b.lang in SHELL}
    assert "pip install . && fastunlearn demo" in blocks
    assert 'pip install ".[test]" && pytest' in blocks
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == 'pip install ".[test]" && pytest'


def test_parser_sees_markers_files_and_stray_commands(tmp_path):
    """The extraction itself, on a hand-written document."""
    doc = tmp_path / "doc.md"
    doc.write_text("\n".join([
        "Intro", "", "```python", "x = 1", "```", "",
        "<!-- not run: needs a cluster -->", "```sh", "dask scheduler", "```",
        "", "```csv pairs.csv", "user,item", "1,2", "```", "",
        "    fastunlearn info model.npz", "", "```", "plain", "```", ""]))
    blocks, stray = parse(doc)
    assert [(b.lang, b.name, b.not_run) for b in blocks] == [
        ("python", "", None), ("sh", "", "needs a cluster"), ("csv", "pairs.csv", None), ("", "", None)]
    assert blocks[2].text == "user,item\n1,2\n"
    assert stray == [(17, "fastunlearn info model.npz")]
    assert markers(doc) == [(7, True)]
