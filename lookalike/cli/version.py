"""``lookalike --version``: the package version, and the git commit when run from a checkout."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Any

import lookalike


def package_version() -> str:
    """The installed distribution's version (``pyproject.toml``), else the package's own."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lookalike")
    except PackageNotFoundError:
        return lookalike.__version__


def checkout_commit(root: Path | None = None) -> str | None:
    """The short commit of the git checkout the package is imported from (``+changes`` when
    tracked files differ from it); None when it is not a checkout or git cannot tell."""
    root = root or Path(lookalike.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=10", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", "lookalike")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+changes" if changed else commit or None


def version_text() -> str:
    """``lookalike 0.1.0`` or ``lookalike 0.1.0 (git 1a2b3c4d5e)``."""
    commit = checkout_commit()
    return f"lookalike {package_version()}" + (f" (git {commit})" if commit else "")


class VersionAction(argparse.Action):
    """``--version``: print ``version_text()`` on stdout and exit 0 (git asked only then)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print the version (and the git commit of a checkout), exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        """Print the version on stdout and exit 0."""
        print(version_text(), flush=True)
        parser.exit()
