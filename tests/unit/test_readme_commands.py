"""README's shell lines, as a reader runs them after `make setup`.

Every line README shows as a command (its ```bash / ```sh / ```console blocks, and its inline
code spans that start with a command: tests/support/markdown.py) is either in RUN, run here as
written, or in NOT_RUN with the reason and the cheap command that stands in for it (`make -n`:
the target exists and expands; `--help`). A command README gains that is in neither fails,
and so does a listed one that README no longer shows. Each line runs in a clean shell from the
checkout, in the environment `source scripts/env.sh` gives (README says to source it), with
homes of its own: a demo the developer has running is never touched."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.support.airflow import user_env
from tests.support.builders import REPO
from tests.support.markdown import block_lines, code_blocks, inline_commands, shell_lines

README = REPO / "README.md"
SMALL_DEMO = "DEMO_LIMIT=300 DEMO_EPOCHS=1 DEMO_SHOPPERS=200 DEMO_EVENTS=8000"
PAUSED = "lookalike_train_and_promote"


class Run(NamedTuple):
    """A README line run as written: ``before`` sets up what the line assumes, ``after``
    checks what it did (both shell, in the same ``set -euo pipefail`` script)."""

    why: str
    before: str = ""
    after: str = ""
    clean_path: bool = False  # PATH without .venv/bin: the line itself must put it there
    slow: bool = False  # over a few seconds: `make test-fast` leaves it out


class NotRun(NamedTuple):
    why: str
    instead: str | None  # run in its place (None: nothing to run)


RUN = {
    "source scripts/env.sh": Run(
        "puts .venv/bin first on PATH (and the demo's homes and ports)",
        after='[ "$(command -v lookalike)" = "$PWD/.venv/bin/lookalike" ]\n'
        '[ "$(command -v airflow)" = "$PWD/.venv/bin/airflow" ]',
        clean_path=True,
    ),
    "make stop": Run("stops what `make demo` started: in a fresh home, nothing"),
    f"airflow dags pause {PAUSED}": Run(
        "in an Airflow home as `make demo` leaves it: migrated, DAGs parsed, the DAG unpaused",
        before=f"airflow db migrate\nairflow dags reserialize\nairflow dags unpause {PAUSED}",
        # `airflow dags pause` exits 0 even for a DAG id it does not know: check the state
        after="airflow dags list -o plain --columns dag_id,is_paused"
        f" | grep -Eq '^{PAUSED} +True$'",
        slow=True,  # five Airflow commands, about 15 s
    ),
}

NOT_RUN = {
    "make demo": NotRun("installs, then trains on 70,000 photos: tens of minutes", "make -n demo"),
    f"{SMALL_DEMO} make demo": NotRun("about 7 minutes after set-up", f"{SMALL_DEMO} make -n demo"),
    "make test": NotRun("the whole suite (about 30 minutes), this test included", "make -n test"),
    "make test-fast": NotRun("the suite without the slow tests: many minutes", "make -n test-fast"),
    "bash .ci/run": NotRun("CI: `make test` on a fresh machine", "bash -n .ci/run"),
    "lookalike serve": NotRun(
        "a server that runs until stopped (tests/integration/test_service_process.py starts it)",
        "lookalike serve --help",
    ),
    "make serve": NotRun("`lookalike serve`, after set-up: runs until stopped", "make -n serve"),
    "airflow dags test": NotRun(
        "names how `make demo` runs the bootstrap (scripts/demo.sh gives the arguments), not a "
        "line to type",
        None,
    ),
}


def readme_commands() -> list[str]:
    text = README.read_text()
    return shell_lines(text) + inline_commands(text)


def run_script(script: str, env: dict[str, str], timeout: int = 120) -> None:
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"{script}\n-> exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment after `make setup` and `source scripts/env.sh`, homes under tmp_path."""
    return user_env(tmp_path / "airflow", tmp_path / "home", 18080)


def test_every_readme_command_is_run_or_listed():
    shown = set(readme_commands())
    unlisted = shown - RUN.keys() - NOT_RUN.keys()
    assert not unlisted, f"README commands neither run nor listed in NOT_RUN: {sorted(unlisted)}"
    gone = (RUN.keys() | NOT_RUN.keys()) - shown
    assert not gone, f"listed here but no longer in README: {sorted(gone)}"
    assert not RUN.keys() & NOT_RUN.keys()


@pytest.mark.requires(bool(shutil.which("make")), "needs make")
@pytest.mark.parametrize(
    "line", [pytest.param(k, marks=[pytest.mark.slow] if v.slow else []) for k, v in RUN.items()]
)
def test_readme_command_runs(line, env):
    run = RUN[line]
    if run.clean_path:
        env = env | {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    run_script("\n".join(part for part in (run.before, line, run.after) if part), env)


@pytest.mark.requires(bool(shutil.which("make")), "needs make")
@pytest.mark.parametrize("line", sorted(k for k, v in NOT_RUN.items() if v.instead))
def test_readme_command_not_run_has_its_stand_in_pass(line, env):
    run_script(NOT_RUN[line].instead, env)


def test_the_extraction_reads_blocks_prompts_continuations_and_inline_spans():
    page = (
        "Run `make demo`, set `LOOKALIKE_STORE_URI=s3://b/p`, then `X=1 make stop`; see\n"
        "`--take-over`, `lookalike_bootstrap` and `GET /v1/items`.\n\n"
        "```bash\nmake demo   # set-up first\n\nlookalike ingest folder photos/ \\\n"
        "  --source landing\n```\n"
        "```console\n$ lookalike --version\nlookalike 0.1.0\n```\n"
        "```text\nmake nothing\n```\n"
    )
    assert shell_lines(page) == [
        "make demo",
        "lookalike ingest folder photos/ --source landing",
        "lookalike --version",
    ]
    assert inline_commands(page) == ["make demo", "X=1 make stop"]
    assert code_blocks(page, ("text",)) == ["make nothing\n"]
    assert block_lines("curl -s 'http://h/#a' # why\n") == ["curl -s 'http://h/#a'"]
