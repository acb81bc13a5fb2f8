"""The documentation stays true to the code: every ``llmspend ...`` command line in a code block
parses with today's CLI, every link between the docs lands on a file and a heading that exist,
and the example outputs that need no data of their own are what the commands print now."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from llmspend.cli import build_parser, main
from llmspend.testing.spans import write_synthetic_spans

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("plugins/*/README.md"))]
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def _blocks(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 1, m.group(2)) for m in FENCE.finditer(text)]


def _command_lines() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for line_no, body in _blocks(path):
            for line in body.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                # a synopsis ([--json], a|b) or an elided command (...) is no command line
                if line.startswith("llmspend ") and not re.search(r"\[|\.\.\.|\|", line):
                    found.append((f"{path.relative_to(ROOT)}:{line_no}", re.split(r"\s+#", line)[0]))
    return found


@pytest.mark.parametrize(("where", "command"), _command_lines())
def test_every_command_line_in_the_docs_parses(where: str, command: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(shlex.split(command)[1:])
        except SystemExit as exc:
            assert not exc.code, f"{where}: {command!r}: {err.getvalue().strip()}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    anchors: set[str] = set()
    for heading in re.findall(r"^#+\s+(.*)$", text, re.M):
        slug = _slug(heading)
        n = 0
        while (candidate := slug if n == 0 else f"{slug}-{n}") in anchors:
            n += 1
        anchors.add(candidate)
    return anchors


def test_every_link_between_the_docs_lands() -> None:
    broken = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"\]\(([^)\s]+)\)", text):
            target = m.group(1)
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}"
            if not dest.exists():
                broken.append(f"{where}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{where}: {target} (no such heading)")
    assert not broken


def _transcripts(path: Path) -> list[tuple[str, list[str]]]:
    """``$ llmspend ...`` commands in a block (not elided themselves) with the output printed
    under each."""
    runs: list[tuple[str, list[str]]] = []
    for _, body in _blocks(path):
        for chunk in re.split(r"^(?=\$ )", body.replace("\\\n", " "), flags=re.M):
            first, _, output = chunk.partition("\n")
            if first.startswith("$ llmspend ") and "..." not in first:
                runs.append((first[2:], output.rstrip("\n").splitlines()))
    return runs


def _elision(line: str) -> bool:
    """A line the docs put in place of output they left out: ``...`` or ``(rows ... left out here)``."""
    return line == "..." or bool(re.fullmatch(r"\(.* left out.*\)", line))


def _assert_printed(actual: list[str], printed: list[str]) -> None:
    """The docs' output is the command's, line for line, or, where the docs elide lines, its
    remaining lines appear in the output in the same order."""
    if not any(_elision(line) for line in printed):
        assert actual == printed
        return
    rest = iter(actual)
    missing = [line for line in printed if not _elision(line) and line not in rest]
    assert not missing, f"not printed (in this order): {missing}"


def _run(command: str) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(shlex.split(command)[1:]) == 0
    return out.getvalue().rstrip("\n").splitlines()


@pytest.mark.parametrize(("command", "printed"), _transcripts(ROOT / "docs" / "economics.md"))
def test_the_economics_examples_print_what_the_docs_show(
    command: str, printed: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "--plot" in command:
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # where --plot writes its chart
    _assert_printed(_run(command), printed)


def test_the_synthetic_report_example_prints_what_the_docs_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (command, printed), = [run for run in _transcripts(ROOT / "docs" / "report.md") if "synthetic.jsonl" in run[0]]
    write_synthetic_spans(str(tmp_path / "synthetic.jsonl"), 2000, seed=1, users=50, days=3)
    monkeypatch.chdir(tmp_path)
    _assert_printed(_run(command), printed)
