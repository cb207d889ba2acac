"""Progress lines go to stderr through logging; run results are dataclasses whose JSON keeps
the keys (and their order) the commands printed when they were dicts."""

import json
import subprocess
import sys

from lookalike.shopper.training import ShopperTrainResult
from lookalike.similarity.tuning import TuneResult

PROGRAM = """
import logging
from lookalike.cli.logs import configure_logging
from lookalike.cli.output import command_output, out

configure_logging()
configure_logging()  # once: a second call adds no second handler
with command_output():
    logging.getLogger("lookalike.similarity.index").info("published v1")
    logging.getLogger("lookalike.similarity.index").debug("not at INFO")
    logging.getLogger("elsewhere").info("not ours")
    out('{"ok": true}')
"""


def test_progress_lines_go_to_stderr_once_and_the_result_alone_to_stdout():
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True}
    lines = [line for line in done.stderr.splitlines() if "lookalike." in line]
    assert len(lines) == 1 and lines[0].endswith(" lookalike.similarity.index published v1")
    assert "not at INFO" not in done.stderr and "not ours" not in done.stderr


def test_shopper_train_result_keeps_the_json_of_the_dict_it_replaced():
    metrics = {"mf": {"hr_at_10": 0.5, "ndcg_at_10": 0.25}, "popularity": {"hr_at_10": 0.1}}
    result = ShopperTrainResult(
        run_id="r1",
        model_version="2",
        interactions_version=3,
        users=10,
        items=20,
        train_pairs=30,
        train_seconds=1.5,
        metrics=metrics,
        index_recall_at_10=0.99,
    )
    assert list(result.to_dict()) == [
        "run_id",
        "model_version",
        "interactions_version",
        "users",
        "items",
        "train_pairs",
        "train_seconds",
        "metrics",
        "index_recall_at_10",
    ]
    assert result.to_dict()["metrics"] == metrics
    assert result.model_version == "2"


def test_tune_result_keeps_the_json_of_the_dict_it_replaced():
    result = TuneResult(
        parent_run_id="p1",
        best_params={"learning_rate": 1e-3},
        best_val_map_at_r=0.4,
        trials=2,
        trials_ok=2,
        catalog_version=1,
    )
    assert json.dumps(result.to_dict()) == json.dumps(
        {
            "parent_run_id": "p1",
            "best_params": {"learning_rate": 1e-3},
            "best_val_map_at_r": 0.4,
            "trials": 2,
            "trials_ok": 2,
            "catalog_version": 1,
        }
    )


def test_an_epoch_loop_of_its_own_logs_one_line_per_epoch():
    from lookalike.training.progress import epoch_lines

    lines: list[str] = []
    line = epoch_lines(3, lines.append)
    line(0, {"loss": 0.5})
    line(2, {"loss": 0.25})
    assert lines[0].startswith("epoch 1/3: loss 0.5;") and "s left" in lines[0]
    assert lines[1].startswith("epoch 3/3: loss 0.25;") and lines[1].endswith("done")
