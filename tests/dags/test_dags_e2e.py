"""The bootstrap, shopper and catalogue refresh DAGs end to end through Airflow (`airflow dags
test`) on a small slice: real spark-submit jobs, real Delta tables, a real MLflow registry and,
for the refresh, the real service following the catalogue."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lookalike import storage
from tests.support.builders import REPO

BIN = Path(sys.executable).parent


def _env(tmp: Path, home: Path) -> dict[str, str]:
    from tests.support.airflow import local_airflow_env

    return local_airflow_env(
        tmp / "airflow",
        home,
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        LOOKALIKE_SPARK_DRIVER_MEMORY="1g",
    )


def _dag_test(env: dict[str, str], dag_id: str, conf: dict) -> str:
    run = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", dag_id, "-c", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-5000:]
    assert "state=success" in log or "DagRunState.SUCCESS" in log, log[-5000:]
    return log


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dag-e2e")
    home = tmp / "home"
    env = _env(tmp, home)
    migrate = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    conf = {
        "limit": 300,
        "backbone": "seed_cnn",
        "epochs": 1,
        "steps_per_epoch": 20,
        "eval_limit": 200,
    }
    _dag_test(env, "lookalike_bootstrap", conf)
    return env, home


@pytest.mark.slow
def test_bootstrap_dag_runs_end_to_end(bootstrapped):
    from lookalike.bundle.registry import production_version
    from lookalike.config import Settings

    _, home = bootstrapped
    settings = Settings(home=home)
    mv = production_version(settings)
    assert mv is not None and mv.tags["lookalike.index_version"] == "v000001"
    promote = json.loads(
        next((home / "runs" / "lookalike_bootstrap").rglob("promote.json")).read_text()
    )
    assert promote["decision"]["promote"] and promote["index"]["size"] == 600


@pytest.mark.slow
def test_shopper_dag_tunes_trains_promotes_and_skips_when_nothing_arrived(bootstrapped):
    from lookalike.catalog.table import table_version
    from lookalike.config import Settings
    from lookalike.registry.aliases import INTERACTIONS_VERSION_TAG
    from lookalike.shopper.registry import version_by

    env, home = bootstrapped
    env = env | {"LOOKALIKE_SHOPPER_TUNE_TRIALS": "2"}  # `tune` stays auto: a smaller budget
    conf = {
        "sim_users": 200,
        "sim_events": 8000,
        "epochs": 5,
        "overrides": "factors=8 batch_size=512 learning_rate=0.01",  # = TINY_SHOPPER
    }
    _dag_test(env, "lookalike_shopper_model", conf)
    settings = Settings(home=home)
    prod = version_by(settings, "production")
    assert prod is not None and str(prod.version) == "1"
    assert prod.tags[INTERACTIONS_VERSION_TAG] == str(table_version(settings.interactions_uri))
    train = json.loads(
        next((home / "runs" / "lookalike_shopper_model").rglob("train.json")).read_text()
    )
    assert train["users"] == 200 and set(train["metrics"]) == {"mf", "popularity", "als"}
    tuning = train["tuning"]  # the first training on this data searched (auto)
    assert not tuning["reused"] and tuning["trials"] == 2 and tuning["trials_ok"] >= 1
    assert tuning["best_val_ndcg_at_10"] >= tuning["base_val_ndcg_at_10"]
    # nothing new landed: the next run trains nothing and registers nothing
    _dag_test(env, "lookalike_shopper_model", conf)
    assert version_by(settings, "challenger").version == prod.version
    assert len(list((home / "runs" / "lookalike_shopper_model").rglob("train.json"))) == 1


@pytest.mark.slow
def test_refresh_dag_makes_the_service_follow_catalogue_changes(bootstrapped):
    """Photos land -> the refresh DAG re-indexes incrementally and publishes -> the live
    service answers with the new version: new products are recommendable; after a photo is
    removed from the landing folder, that product is gone from the results."""
    import httpx

    from lookalike.config import Settings
    from serving.main import create_app
    from tests.support.photos import land_fashion_mnist_photos
    from tests.support.server import Server, wait_for

    env, home = bootstrapped
    settings = Settings(home=home, serve_poll_seconds=0.5)
    with Server(create_app(settings)) as server:
        c = httpx.Client(base_url=server.url, timeout=30)
        wait_for(lambda: c.get("/readyz").status_code == 200, timeout=120)
        before = c.get("/v1/version").json()["bundle_version"]
        paths = land_fashion_mnist_photos(
            settings.fashion_mnist_dir, settings.landing_uri, [5000, 5001, 5002]
        )
        landed = {item_id: (uri, storage.read_bytes(uri)) for item_id, uri in paths.items()}
        env = env | {"LOOKALIKE_SERVE_URL": server.url}

        _dag_test(env, "lookalike_catalog_refresh", {})
        after = c.get("/v1/version").json()  # confirm_service waited for the swap
        assert int(after["bundle_version"]) == int(before) + 1
        for item_id, (_, png) in landed.items():
            assert c.get(f"/v1/items/{item_id}").status_code == 200
            found = c.post("/v1/similar", files={"photo": ("p.png", png, "image/png")}).json()
            assert found["items"][0]["item_id"] == item_id, found["items"][:3]
            assert found["versions"]["bundle_version"] == after["bundle_version"]

        gone = sorted(landed)[0]
        storage.remove_file(landed[gone][0])
        _dag_test(env, "lookalike_catalog_refresh", {})
        latest = c.get("/v1/version").json()
        assert int(latest["bundle_version"]) == int(after["bundle_version"]) + 1
        assert c.get(f"/v1/items/{gone}").status_code == 404
        found = c.post(
            "/v1/similar",
            files={"photo": ("p.png", landed[gone][1], "image/png")},
            params={"k": 20},
        ).json()
        assert gone not in {i["item_id"] for i in found["items"]}
        for item_id in sorted(landed)[1:]:
            assert c.get(f"/v1/items/{item_id}").status_code == 200


def _runs(c, dag_id: str) -> list[dict]:
    r = c.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
    r.raise_for_status()
    return r.json()["dag_runs"]


@pytest.mark.slow
def test_the_real_scheduler_runs_a_triggered_and_a_scheduled_refresh(bootstrapped, tmp_path):
    """Not `dags test`: api-server, scheduler (LocalExecutor) and dag-processor on loopback.
    The refresh DAG, unpaused and on an every-minute schedule, is triggered through the REST
    API as the UI's button does; nothing landed since the last refresh, so it short-circuits
    (no re-index, no publish). Then a run the scheduler started by itself succeeds too."""
    import httpx

    from tests.support.airflow import airflow_services, api_token
    from tests.support.server import free_port, wait_for

    env, _ = bootstrapped
    dag = "lookalike_catalog_refresh"
    env = env | {"LOOKALIKE_REFRESH_SCHEDULE": "* * * * *"}
    airflow_home = Path(env["AIRFLOW_HOME"])
    with airflow_services(env, free_port(), tmp_path / "airflow-logs") as url:
        token = api_token(url, airflow_home)
        c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        wait_for(lambda: c.get(f"/api/v2/dags/{dag}").status_code == 200, timeout=120, every=1)
        assert c.patch(f"/api/v2/dags/{dag}", json={"is_paused": False}).status_code == 200
        r = c.post(f"/api/v2/dags/{dag}/dagRuns", json={"logical_date": None, "conf": {}})
        assert r.status_code == 200, r.text
        run_id = r.json()["dag_run_id"]

        def finished(run: str) -> str | None:
            state = c.get(f"/api/v2/dags/{dag}/dagRuns/{run}").json()["state"]
            return state if state in ("success", "failed") else None

        assert wait_for(lambda: finished(run_id), timeout=420, every=1) == "success"
        tasks = c.get(f"/api/v2/dags/{dag}/dagRuns/{run_id}/taskInstances").json()
        states = {t["task_id"]: t["state"] for t in tasks["task_instances"]}
        assert states["ingest_landing"] == "success" and states["reindex"] == "skipped", states

        def scheduled_done() -> str | None:
            runs = [r for r in _runs(c, dag) if r["run_type"] == "scheduled"]
            done = [r["state"] for r in runs if r["state"] in ("success", "failed")]
            return done[0] if done else None

        assert wait_for(scheduled_done, timeout=420, every=2) == "success"
        c.patch(f"/api/v2/dags/{dag}", json={"is_paused": True})


@pytest.mark.slow
def test_weekly_training_dag_at_its_defaults_reaches_promote(bootstrapped):
    """The weekly DAG with its default parameters (4 Hyperopt trials on SparkTrials, Horovod
    with 2 processes, the default ``convnet`` backbone with batch norm, the schedule chosen
    from the catalogue), only fewer test queries: tune -> train -> gate (beats the champion
    and raw pixels) -> full index -> promote. It is also the test of Hyperopt's MLflow runs,
    of ``spark_jobs/train.py --horovod`` and of rank 0 alone logging the training run."""
    from mlflow import MlflowClient

    from lookalike.bundle.registry import production_version
    from lookalike.config import Settings

    env, home = bootstrapped
    settings = Settings(home=home)
    before = production_version(settings)
    _dag_test(env, "lookalike_train_and_promote", {"eval_limit": 200})
    runs = home / "runs" / "lookalike_train_and_promote"
    tune = json.loads(next(runs.rglob("tune.json")).read_text())
    train = json.loads(next(runs.rglob("train.json")).read_text())
    config = json.loads(next(runs.rglob("best_config.json")).read_text())
    assert config["backbone"] == "convnet" and config["epochs"] is None  # from the catalogue
    assert train["config"]["epochs"] >= 10 and train["config"]["steps_per_epoch"] >= 1
    assert train["model_version"] and 0.0 < train["metrics"]["precision_at_1"] <= 1.0
    assert train["catalog_version"] == tune["catalog_version"]

    client = MlflowClient(settings.tracking_uri)
    assert tune["trials_ok"] == tune["trials"] == 4 and 0.0 < tune["best_val_map_at_r"] <= 1.0
    assert {"learning_rate", "embedding_size", "examples_per_class"} <= set(tune["best_params"])
    parent = client.get_run(tune["parent_run_id"])
    assert parent.data.metrics["best_val_map_at_r"] == pytest.approx(tune["best_val_map_at_r"])
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{tune['parent_run_id']}'",
    )
    assert len(children) == 4 and all("val_map_at_r" in c.data.metrics for c in children)
    assert client.get_run(train["run_id"]).data.params["num_proc"] == "2"
    losses = client.get_metric_history(train["run_id"], "train_loss")
    assert len(losses) == train["config"]["epochs"]  # one point per epoch: rank 0 alone logs
    after = production_version(settings)  # promote ran: the new encoder serves
    assert after is not None and int(after.version) > int(before.version), train["metrics"]
    assert after.tags["lookalike.encoder"].endswith(f"/{train['model_version']}")
