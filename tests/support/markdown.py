"""The shell a Markdown page shows a reader: its fenced shell blocks and its inline commands.

Shared by the tests that run documentation as written (tests/serving/test_docs_examples.py,
tests/unit/test_readme_commands.py), so both read a page the same way."""

from __future__ import annotations

import re

#: Fenced blocks whose lines are shell commands (``console``: only lines after a ``$`` prompt).
SHELL_LANGUAGES = ("bash", "sh", "console")

#: First words that make an inline code span a shell command (after any ``VAR=value``).
COMMAND_WORDS = (
    "airflow",
    "apt-get",
    "bash",
    "cd",
    "curl",
    "docker",
    "docker-compose",
    "export",
    "git",
    "jq",
    "lookalike",
    "make",
    "mlflow",
    "pip",
    "pytest",
    "python",
    "python3",
    "ruff",
    "sh",
    "source",
    "spark-submit",
    "sudo",
)

_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
_INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
_ASSIGNMENTS = r"(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*"
_COMMAND = re.compile(rf"^{_ASSIGNMENTS}(?:{'|'.join(map(re.escape, COMMAND_WORDS))})(?=\s|$)")
_COMMENT = re.compile(r"(?:^|\s+)#.*$")


def section(text: str, heading: str) -> str:
    """``text`` from the line ``heading`` (e.g. ``## Examples``) to the end."""
    match = re.search(rf"^{re.escape(heading)}[ \t]*$", text, re.M)
    if match is None:
        raise ValueError(f"no heading {heading!r}")
    return text[match.start() :]


def code_blocks(text: str, languages: tuple[str, ...] = SHELL_LANGUAGES) -> list[str]:
    """The bodies of the fenced blocks in ``languages``, in order, each as written (with its
    last newline)."""
    return [m[2] for m in _FENCE.finditer(text) if m[1] in languages]


def block_lines(block: str, language: str = "bash") -> list[str]:
    """A shell block's commands, one per logical line: continuations (a trailing ``\\``)
    joined, comments, blank lines and (``console``) output lines dropped."""
    lines, pending = [], ""
    for raw in block.splitlines():
        if language == "console" and not pending:
            if not raw.startswith("$ "):
                continue
            raw = raw[2:]
        raw = raw.strip() if pending else raw
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1].rstrip() + " "
            continue
        line = _COMMENT.sub("", pending + raw).strip()
        pending = ""
        if line:
            lines.append(line)
    return lines


def shell_lines(text: str) -> list[str]:
    """Every command line of the page's fenced shell blocks, in order."""
    return [
        line
        for m in _FENCE.finditer(text)
        if m[1] in SHELL_LANGUAGES
        for line in block_lines(m[2], m[1])
    ]


def inline_commands(text: str) -> list[str]:
    """The inline code spans outside fenced blocks that are shell commands: they start with
    one of ``COMMAND_WORDS``, possibly after ``VAR=value`` assignments (a span that is only
    an assignment, a flag, a path or a route is not one)."""
    prose = _FENCE.sub("", text)
    spans = (" ".join(m[1].split()) for m in _INLINE.finditer(prose) if "\n\n" not in m[1])
    return [span for span in spans if _COMMAND.match(span)]
