"""The command line as its user meets it (no Spark, no training): ``--version``, help with an
example per command group, one line and exit 1 for a user error, exit 2 for a usage error,
no third-party warnings; and the progress lines of long work (elapsed, metric, time left)."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

import lookalike
from lookalike.cli import build_parser, helptext, main
from lookalike.cli.logs import QUIET_ENV, quiet_third_parties
from lookalike.cli.output import EXIT_FAILED, EXIT_USAGE, CommandError, UsageError
from lookalike.cli.version import checkout_commit, package_version, version_text
from lookalike.training.progress import TrialProgress, eta_seconds, progress_line, stage_line

REPO = Path(lookalike.__file__).resolve().parent.parent


def _groups() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


# --version -------------------------------------------------------------------------------


def test_version_prints_the_package_version_and_the_checkout_commit(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(r"lookalike \d+\.\d+\.\d+\S* \(git [0-9a-f]{7,}(\+changes)?\)", out), out
    assert out.startswith(f"lookalike {package_version()} ")


def test_version_without_a_checkout_is_the_package_version_alone(tmp_path, monkeypatch):
    assert checkout_commit(tmp_path) is None
    monkeypatch.setattr("lookalike.cli.version.checkout_commit", lambda: None)
    assert version_text() == f"lookalike {package_version()}"


# --help ----------------------------------------------------------------------------------


def test_every_command_group_has_a_description_and_an_example():
    groups = _groups()
    assert set(groups) == set(helptext.GROUPS)  # a new command needs its help text
    for name, parser in groups.items():
        text = parser.format_help()
        assert "examples:\n  lookalike " + name in text, name
        assert helptext.GROUPS[name][0].split()[0] in text, name


@pytest.mark.parametrize(
    "example",
    [e for _, examples in helptext.GROUPS.values() for e in examples]
    + [line.split("#")[0] for line in helptext.EPILOG.splitlines() if "  lookalike " in line],
)
def test_every_example_in_the_help_parses(example):
    words = shlex.split(example)
    assert words[0] == "lookalike"
    args = build_parser().parse_args(words[1:])
    assert callable(args.func)


def test_top_level_help_is_written_for_the_user(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "Thin:" not in text  # the module's docstring is for developers
    assert "--version" in text and "--verbose" in text
    for code in (0, EXIT_FAILED, EXIT_USAGE):
        assert re.search(rf"^  {code}  \S", text, re.MULTILINE), code
    assert "lookalike ingest fashion-mnist" in text


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["index", "update"], False),
        (["--verbose", "index", "update"], True),
        (["index", "update", "-v"], True),  # spark_jobs/*.py put the command first
        (["train", "--set", "epochs=1", "--verbose"], True),
    ],
)
def test_verbose_before_or_after_the_command(argv, verbose):
    assert build_parser().parse_args(argv).verbose is verbose


def test_nested_commands_describe_themselves():
    index = _groups()["index"]
    sub = next(a for a in index._actions if isinstance(a, argparse._SubParsersAction))
    assert sub.choices["update"].description.startswith("Apply catalogue changes")


# errors and exit statuses ----------------------------------------------------------------


def test_a_usage_error_exits_2_naming_the_argument(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["tune", "--trials", "0"])
    assert exit_.value.code == EXIT_USAGE == 2
    assert "--trials: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "mnist"])
    assert exit_.value.code == 2
    assert "invalid choice: 'mnist'" in capsys.readouterr().err


def _run_with(func, capsys) -> tuple[int, list[str]]:
    parser = build_parser()
    args = parser.parse_args(["rollback"])
    args.func = func
    from unittest import mock

    with mock.patch.object(argparse.ArgumentParser, "parse_args", return_value=args):
        code = main([])
    return code, capsys.readouterr().err.splitlines()


def test_user_errors_exit_1_with_one_line(capsys):
    from lookalike.locks import LeaseHeld
    from lookalike.registry.encoders import EncoderNotFound

    for error in (
        CommandError("nothing to do:\nsee the docs"),
        LeaseHeld("promote: another writer is at work"),
        EncoderNotFound("encoder 'lookalike-encoder' has no version or alias 'nope'"),
    ):

        def fail(args, error=error):
            raise error

        code, lines = _run_with(fail, capsys)
        assert code == EXIT_FAILED == 1
        assert len(lines) == 1 and lines[0].startswith("lookalike: error: "), lines
    assert (
        lines[0] == "lookalike: error: encoder 'lookalike-encoder' has no version or alias 'nope'"
    )


def test_usage_error_is_a_command_error_with_exit_2():
    assert issubclass(UsageError, CommandError)
    assert (CommandError.exit_code, UsageError.exit_code) == (1, 2)


def test_a_bug_still_shows_its_traceback(capsys):
    def bug(args):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        _run_with(bug, capsys)


def test_an_unknown_encoder_is_one_line_without_warnings_as_a_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONWARN")}
    env |= {"LOOKALIKE_HOME": str(tmp_path)}
    for name in QUIET_ENV:
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "lookalike.cli", "index", "update", "--encoder", "nope"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "lookalike: error: encoder 'lookalike-encoder' has no version or alias 'nope'"
    ]


def test_third_party_warnings_are_quiet_unless_verbose(monkeypatch):
    monkeypatch.setattr(sys, "warnoptions", [])
    for name in QUIET_ENV:
        monkeypatch.delenv(name, raising=False)
    shown: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *a, **k: shown.append(message))
    with quiet_third_parties(verbose=False):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # as MLflow does around its own checks
            warnings.warn("from a library", UserWarning, stacklevel=1)
    assert shown == [] and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    with quiet_third_parties(verbose=True), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("from a library", UserWarning, stacklevel=1)
    assert [str(m) for m in shown] == ["from a library"]


# progress lines --------------------------------------------------------------------------


def test_eta_is_the_mean_rate_so_far_applied_to_what_is_left():
    assert eta_seconds(100.0, 2, 10) == 400.0
    assert eta_seconds(100.0, 10, 10) == 0.0
    assert eta_seconds(5.0, 0, 10) is None
    assert eta_seconds(5.0, 1, None) is None


def test_progress_line_has_elapsed_metric_and_time_left():
    line = progress_line("epoch", 3, 10, 130.0, {"loss": 0.41234, "lr": 0.001})
    assert line == "epoch 3/10: loss 0.4123, lr 0.001; 130 s elapsed, about 303 s left"
    assert progress_line("epoch", 10, 10, 500, {"loss": 0.2}).endswith("500 s elapsed, done")
    assert progress_line("trial", 0, 4, 2, note="failed: boom") == (
        "trial 0/4: failed: boom; 2 s elapsed, time left unknown"
    )


def _trial(tid: int, state: int, result: dict, seconds: float = 30.0) -> dict:
    start = datetime(2026, 1, 1, 12, 0, 0)
    return {
        "tid": tid,
        "state": state,
        "result": result,
        "book_time": start,
        "refresh_time": start + timedelta(seconds=seconds),
    }


def test_each_trial_that_ends_gets_one_line_with_its_metric_and_the_best(monkeypatch):
    lines: list[str] = []
    progress = TrialProgress(4, "val_map_at_r", emit=lines.append)
    progress.start -= 60  # the search started a minute ago
    docs = [
        _trial(0, 2, {"status": "ok", "loss": -0.4}),
        _trial(1, 1, {"status": "new"}),  # running: no line yet
        _trial(2, 3, {"status": "fail", "error": "out of memory"}),
    ]
    stop, _ = progress(type("Trials", (), {"trials": docs})())
    assert stop is False
    assert len(lines) == 2
    assert lines[0].startswith("trial 1/4: val_map_at_r 0.4, best 0.4; trial took 30 s; 60 s")
    assert "about 180 s left" in lines[0]
    assert lines[1].startswith("trial 2/4: failed: out of memory; trial took 30 s; 60 s")
    docs[1] = _trial(1, 2, {"status": "ok", "loss": -0.3})
    progress.report(docs)
    progress.report(docs)  # reported once
    assert len(lines) == 3
    assert lines[2].startswith("trial 3/4: val_map_at_r 0.3, best 0.4;")


def test_an_embedding_pass_line_has_tasks_elapsed_and_time_left():
    assert stage_line("embedding", 4, 16, 60.0) == (
        "embedding: 4/16 tasks; 60 s elapsed, about 180 s left"
    )
    assert stage_line("embedding", 0, 16, 5.0).endswith("time left unknown")


def test_an_epoch_logs_one_line_with_loss_first():
    from lookalike.training.progress import epoch_progress

    lines: list[str] = []
    callback = epoch_progress(3, emit=lines.append)
    callback.set_params({"epochs": 2})  # one fit of a schedule: the total is still 3
    callback.on_epoch_begin(0)
    callback.on_epoch_end(0, {"mse": 2.0, "loss": 0.5})
    callback.on_epoch_begin(1)
    callback.on_epoch_end(1, {"loss": np.float32(0.25), "note": "not a number"})
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/3: loss 0.5, mse 2; ")
    assert lines[1].startswith("epoch 2/3: loss 0.25; ") and "left" in lines[1]
