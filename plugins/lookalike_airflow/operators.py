"""The operator factory the DAGs share: Spark jobs as ``SparkSubmitOperator`` tasks whose
command line is written as keyword arguments, where each job writes its JSON summary, and the
default arguments of every task.

Airflow-facing only (the steps between the jobs are library code in ``lookalike.workflows``).
The provider is imported inside ``spark_job`` and nothing heavy at the top, so a DAG file that
imports this still parses in well under a second.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The base of Airflow's own runtime values (XComArg, DagParam): a template field holding one
# resolves it when the task runs, and the operator gets the tasks it references as upstream.
from airflow.sdk.definitions._internal.mixins import ResolveMixin

from lookalike.config import REPO_ROOT, get_settings

if TYPE_CHECKING:
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.sdk.types import Operator

    from lookalike.config import Settings

SPARK_JOBS = REPO_ROOT / "spark_jobs"
SPARK_CONN_ID = "spark_default"

#: Defaults of every task: retried once, bounded in time.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "lookalike",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
    "execution_timeout": timedelta(hours=2),
}

#: One command-line argument: text, or a value resolved when the task runs.
CliArg = str | ResolveMixin


def summary_path(task: str) -> str:
    """Where a Spark job writes its JSON summary, on the shared store (so the step reading it
    may run on another host), templated by run id (so retries overwrite)."""
    run = "{{ dag.dag_id }}/{{ run_id | replace(':', '_') }}"
    return get_settings().at("runs", run, f"{task}.json")


class XComPath(ResolveMixin):
    """A value inside what an upstream task returned, e.g. ``xcom_path(decision, "decision",
    "challenger_version")``: an XComArg's own ``["key"]`` names another XCom of the task, not
    a key inside its value. Resolves when the task runs; makes the source task upstream."""

    def __init__(self, source: ResolveMixin, *keys: str | int) -> None:
        self.source = source
        self.keys = keys

    def iter_references(self) -> Iterable[tuple[Operator, str]]:
        return self.source.iter_references()

    def resolve(self, context: Any) -> Any:
        value = self.source.resolve(context)
        for key in self.keys:
            value = value[key]
        return value

    def __repr__(self) -> str:  # what the serialized DAG shows (stable across parses)
        return repr(self.source) + "".join(f"[{key!r}]" for key in self.keys)


def xcom_path(source: ResolveMixin, *keys: str | int) -> XComPath:
    """``source``'s value at ``keys`` (see `XComPath`)."""
    return XComPath(source, *keys)


class _Text(ResolveMixin):
    """A runtime value as the text of one argument (``prefix`` first): the hook joins the
    command as strings, and text is what a Jinja ``xcom_pull`` rendered the same value to."""

    def __init__(self, value: ResolveMixin, prefix: str = "") -> None:
        self.value = value
        self.prefix = prefix

    def iter_references(self) -> Iterable[tuple[Operator, str]]:
        return self.value.iter_references()

    def resolve(self, context: Any) -> str:
        return f"{self.prefix}{self.value.resolve(context)}"

    def __str__(self) -> str:  # an XComArg's text is its Jinja ``xcom_pull`` equivalent
        return f"{self.prefix}{self.value}"


def _text(value: Any, prefix: str = "") -> CliArg:
    if isinstance(value, ResolveMixin):
        return _Text(value, prefix)
    return f"{prefix}{value}"


def _flag(name: str, value: Any) -> Iterator[CliArg]:
    """The arguments of one keyword argument (rules in `cli_args`)."""
    flag = "--" + name.replace("_", "-")
    if value is None:
        return
    if isinstance(value, bool):
        yield flag if value else f"--no-{flag[2:]}"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if item is not None:
                yield from (flag, _text(item, prefix=f"{key}="))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from (flag, _text(item))
    else:
        yield from (flag, _text(value))


def cli_args(*positional: Any, **flags: Any) -> list[CliArg]:
    """A job's command line from Python arguments, so a DAG writes ``limit=...`` rather than
    a list of strings: the positional arguments first, as they are, then each keyword in
    order as ``--kebab-case value``. True is a bare ``--name``, False ``--no-name`` (how the
    CLI spells an off switch, e.g. ``--no-publish``), None nothing; a mapping gives one
    ``--name key=value`` per item (``--set``), a list one ``--name item`` per item. Values may
    be plain, Jinja strings (rendered at run time, like ``{{ params.x }}``), or XComArgs and
    `xcom_path`s, resolved at run time to text and making their tasks upstream of this one."""
    return [_text(value) for value in positional] + [
        arg for name, value in flags.items() for arg in _flag(name, value)
    ]


def _spark_env(settings: Settings) -> dict[str, str]:
    """The job's environment: this venv's Python and ``spark-submit``, this home."""
    python = sys.executable
    env = {
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
        "PATH": f"{Path(python).parent}:{os.environ.get('PATH', '')}",
        "LOOKALIKE_HOME": str(settings.home),
    }
    if settings.spark_master.startswith("local"):  # a laptop: keep Spark on loopback
        env["SPARK_LOCAL_IP"] = os.environ.get("SPARK_LOCAL_IP", "127.0.0.1")
    elif os.environ.get("SPARK_LOCAL_IP"):
        env["SPARK_LOCAL_IP"] = os.environ["SPARK_LOCAL_IP"]
    return env


def spark_job(task_id: str, script: str, *positional: Any, **flags: Any) -> SparkSubmitOperator:
    """A SparkSubmitOperator for ``spark_jobs/<script>`` on connection ``spark_default``
    (master from the connection: ``local[2]`` by default, any ``spark://`` master works),
    its arguments from ``positional`` and ``flags`` by `cli_args`:
    ``spark_job("tune", "tune.py", trials="{{ params.trials }}", catalog_version=version)``."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    settings = get_settings()
    return SparkSubmitOperator(
        task_id=task_id,
        application=str(SPARK_JOBS / script),
        application_args=cli_args(*positional, **flags),
        conn_id=SPARK_CONN_ID,
        name=f"lookalike-{task_id}",
        driver_memory=settings.spark_driver_memory,
        env_vars=_spark_env(settings),
        spark_binary=str(Path(sys.executable).parent / "spark-submit"),
    )
