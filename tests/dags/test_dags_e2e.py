"""Every DAG end to end under the REAL scheduler (LocalExecutor: a process per task), not
`airflow dags test` (one process for all tasks, where a task can lean on what an earlier one
set up). On a small slice: real spark-submit jobs, real Delta tables, a real MLflow registry
and `lookalike serve` as its own process following the production alias.

The scheduler, dag-processor, API server and service get the environment `scripts/env.sh`
gives a user, not this test process's, plus ``MLFLOW_TRACKING_URI`` pointing at a store that
does not exist (a user's shell may point MLflow elsewhere): every task must configure MLflow
from the settings. They run in an empty working directory, where no ``mlflow.db`` or
``mlruns`` may appear."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lookalike import storage
from tests.conftest import UNCONFIGURED_MLFLOW
from tests.support.builders import REPO

BIN = Path(sys.executable).parent
SCHEDULED = ["lookalike_catalog_refresh", "lookalike_shopper_model", "lookalike_train_and_promote"]
BOOTSTRAP = {
    "limit": 300,
    "backbone": "seed_cnn",
    "epochs": 1,
    "steps_per_epoch": 20,
    "eval_limit": 200,
}

pytestmark = pytest.mark.slow


@dataclass
class Stack:
    """A user's single-host deployment: Airflow, the service, their homes."""

    env: dict[str, str]
    home: Path
    workdir: Path
    airflow: object  # tests.support.airflow.AirflowApi
    service: httpx.Client

    def settings(self):
        from lookalike.config import Settings

        return Settings(home=self.home)


def _serve(env: dict[str, str], port: int, workdir: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "lookalike"), "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from tests.support.airflow import AirflowApi, airflow_services, user_env
    from tests.support.server import free_port, stop_process_groups, wait_for

    tmp = tmp_path_factory.mktemp("dag-e2e")
    home, workdir, logs = tmp / "home", tmp / "workdir", tmp / "logs"
    workdir.mkdir()
    logs.mkdir()
    port, serve_port = free_port(), free_port()
    env = user_env(
        tmp / "airflow",
        home,
        port,
        LOOKALIKE_SERVE_URL=f"http://127.0.0.1:{serve_port}",
        LOOKALIKE_SERVE_POLL_SECONDS="0.5",
        LOOKALIKE_SPARK_DRIVER_MEMORY="1g",
        LOOKALIKE_SHOPPER_TUNE_TRIALS="2",  # the shopper DAG still tunes (auto), on a budget
        MLFLOW_TRACKING_URI=UNCONFIGURED_MLFLOW,
        MLFLOW_REGISTRY_URI=UNCONFIGURED_MLFLOW,
    )
    migrate = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    service = _serve(env, serve_port, workdir, logs / "service.log")
    try:
        with airflow_services(env, port, logs, cwd=workdir) as url:
            api = AirflowApi(url, tmp / "airflow")
            api.wait_for_dags([*SCHEDULED, "lookalike_bootstrap"])
            client = httpx.Client(base_url=f"http://127.0.0.1:{serve_port}", timeout=30)
            wait_for(lambda: _up(client), timeout=120, every=1)
            yield Stack(env, home, workdir, api, client)
    finally:
        service.send_signal(signal.SIGTERM)
        stop_process_groups([service])
    leftovers = {p.name for p in workdir.iterdir()} & {"mlflow.db", "mlruns"}
    assert not leftovers, f"MLflow was used without the settings: {leftovers} in {workdir}"


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def bootstrapped(stack):
    stack.airflow.run("lookalike_bootstrap", BOOTSTRAP, timeout=1200)
    return stack


def test_unpausing_a_scheduled_dag_starts_nothing_before_its_next_time(stack):
    """What `make demo` does at its end, in a fresh metadata database: unpause the three
    scheduled DAGs. None may start a run at once (the first is at its next scheduled time;
    a DAG unpaused within its timetable's 5-minute grace after a cron time runs that one,
    so such a DAG is left out of the check)."""
    api = stack.airflow
    unpaused_at = time.time()
    checked = [d for d in SCHEDULED if not _just_after(api.dag(d)["timetable_summary"])]
    assert checked, "every DAG is within its grace (can only happen at 02:00-02:05 + ...)"
    for dag_id in SCHEDULED:
        api.set_paused(dag_id, False)
    try:
        time.sleep(20)  # ten scheduler heartbeats, four dag-processor refreshes
        for dag_id in checked:
            assert api.runs(dag_id) == [], dag_id
            nxt = api.dag(dag_id)["next_dagrun_run_after"]
            assert nxt is not None, dag_id
            assert _epoch(nxt) > unpaused_at, (dag_id, nxt)
    finally:
        for dag_id in SCHEDULED:
            api.set_paused(dag_id, True)


def _just_after(cron: str, grace: float = 300 + 60) -> bool:
    """Now is within ``grace`` seconds after one of ``cron``'s times (the timetable's 5
    minutes, plus the dag-processor's 30 s between two parses of a DAG file, which is when
    the next run is worked out, and a margin)."""
    from datetime import UTC, datetime

    from croniter import croniter

    now = datetime.now(UTC)
    return (now - croniter(cron, now).get_prev(datetime)).total_seconds() <= grace


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_bootstrap_dag_runs_end_to_end(bootstrapped):
    from lookalike.similarity.registry import production_version

    home = bootstrapped.home
    mv = production_version(bootstrapped.settings())
    assert mv is not None and mv.tags["lookalike.index_version"] == "v000001"
    promote = json.loads(
        next((home / "runs" / "lookalike_bootstrap").rglob("promote.json")).read_text()
    )
    assert promote["decision"]["promote"] and promote["index"]["size"] == 600
    c = bootstrapped.service
    wait_for_version = _waiter(c)
    wait_for_version(str(mv.version))
    assert c.get("/v1/items/fm-test-00001").status_code == 200


def _waiter(c: httpx.Client):
    from tests.support.server import wait_for

    def wait_for_version(bundle_version: str) -> dict:
        def serving() -> dict | None:
            r = c.get("/v1/version")
            body = r.json() if r.status_code == 200 else {}
            return body if body.get("bundle_version") == bundle_version else None

        return wait_for(serving, timeout=120, every=0.5)

    return wait_for_version


def test_shopper_dag_tunes_trains_promotes_and_skips_when_nothing_arrived(bootstrapped):
    from lookalike.catalog.table import table_version
    from lookalike.registry.aliases import INTERACTIONS_VERSION_TAG
    from lookalike.shopper.registry import version_by

    home, settings = bootstrapped.home, bootstrapped.settings()
    conf = {
        "sim_users": 200,
        "sim_events": 8000,
        "epochs": 5,
        "overrides": "factors=8 batch_size=512 learning_rate=0.01",  # = TINY_SHOPPER
    }
    bootstrapped.airflow.run("lookalike_shopper_model", conf)
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
    bootstrapped.airflow.run("lookalike_shopper_model", conf)
    assert version_by(settings, "challenger").version == prod.version
    assert len(list((home / "runs" / "lookalike_shopper_model").rglob("train.json"))) == 1


def _land(settings, indexes: list[int]) -> dict[str, tuple[str, bytes]]:
    from tests.support.photos import land_fashion_mnist_photos

    paths = land_fashion_mnist_photos(settings.fashion_mnist_dir, settings.landing_uri, indexes)
    return {item_id: (uri, storage.read_bytes(uri)) for item_id, uri in paths.items()}


def test_refresh_dag_makes_the_service_follow_landed_photos(bootstrapped):
    """Photos land -> the refresh DAG (every task in its own process) ingests, re-indexes
    incrementally and publishes -> the live service answers with the new version; after a
    photo is removed from the landing folder, that product is gone from the results."""
    settings, c = bootstrapped.settings(), bootstrapped.service
    before = c.get("/v1/version").json()["bundle_version"]
    landed = _land(settings, [5000, 5001, 5002])

    run_id = bootstrapped.airflow.run("lookalike_catalog_refresh")
    states = bootstrapped.airflow.task_states("lookalike_catalog_refresh", run_id)
    assert states["reindex"] == states["publish"] == states["confirm_service"] == "success"
    after = c.get("/v1/version").json()  # confirm_service waited for the swap
    assert int(after["bundle_version"]) > int(before)
    for item_id, (_, png) in landed.items():
        assert c.get(f"/v1/items/{item_id}").status_code == 200
        found = c.post("/v1/similar", files={"photo": ("p.png", png, "image/png")}).json()
        assert found["items"][0]["item_id"] == item_id, found["items"][:3]
        assert found["versions"]["bundle_version"] == after["bundle_version"]

    gone = sorted(landed)[0]
    storage.remove_file(landed[gone][0])
    bootstrapped.airflow.run("lookalike_catalog_refresh")
    latest = c.get("/v1/version").json()
    assert int(latest["bundle_version"]) > int(after["bundle_version"])
    assert c.get(f"/v1/items/{gone}").status_code == 404
    found = c.post(
        "/v1/similar",
        files={"photo": ("p.png", landed[gone][1], "image/png")},
        params={"k": 20},
    ).json()
    assert gone not in {i["item_id"] for i in found["items"]}
    for item_id in sorted(landed)[1:]:
        assert c.get(f"/v1/items/{item_id}").status_code == 200


def test_a_landed_photo_is_served_within_a_minute_with_no_trigger(bootstrapped):
    """Issue 45's path under the real scheduler, dag-processor and triggerer: a photo lands;
    the landing asset's watcher (in the triggerer) starts lookalike_catalog_fresh, which
    ingests it and commits its embedding (a Spark job the first time, then on the driver);
    the running service applies the change feed in place (no new bundle) and answers for
    it, by id and by upload. A removed photo goes the same way."""
    from lookalike.similarity.registry import production_version
    from tests.support.server import wait_for

    api, settings, c = bootstrapped.airflow, bootstrapped.settings(), bootstrapped.service
    dag = "lookalike_catalog_fresh"
    before = _waiter(c)(str(production_version(settings).version))  # the served bundle
    api.set_paused(dag, False)
    try:
        t0 = time.monotonic()
        landed = _land(settings, [5100])
        ((item_id, (uri, png)),) = landed.items()

        def served() -> dict | None:
            if c.get(f"/v1/items/{item_id}").status_code != 200:
                return None
            found = c.post("/v1/similar", files={"photo": ("p.png", png, "image/png")}).json()
            return found if found["items"][0]["item_id"] == item_id else None

        found = wait_for(served, timeout=600, every=0.5)
        seconds = time.monotonic() - t0
        runs = api.runs(dag)
        assert runs and all(r["run_type"] == "asset_triggered" for r in runs), runs
        now = found["versions"]
        assert now["bundle_version"] == before["bundle_version"]  # in place, no new bundle
        assert now["embeddings_version"] > before["embeddings_version"]
        print(f"landed -> served in {seconds:.1f} s")

        storage.remove_file(uri)
        wait_for(lambda: c.get(f"/v1/items/{item_id}").status_code == 404, timeout=600, every=0.5)
        found = c.post(
            "/v1/similar", files={"photo": ("p.png", png, "image/png")}, params={"k": 20}
        ).json()
        assert item_id not in {i["item_id"] for i in found["items"]}
        # The first run had no ingested listing to compare with: the Spark job ingested the
        # store (and recorded it). The removal then needed only the driver.
        paths = _fresh_paths(api, dag)
        assert paths[0] == "spark" and paths[-1] == "driver", paths
    finally:
        api.set_paused(dag, True)


def _fresh_paths(api, dag: str) -> list[str]:
    """Which way each finished fresh run ingested (``spark`` or ``driver``), oldest first."""
    from tests.support.server import wait_for

    def finished() -> list[dict] | None:
        runs = sorted(api.runs(dag), key=lambda r: r["start_date"] or "")
        return runs if all(r["state"] in ("success", "failed") for r in runs) else None

    runs = wait_for(finished, timeout=300, every=1)
    assert all(r["state"] == "success" for r in runs), runs
    states = [api.task_states(dag, r["dag_run_id"]) for r in runs]
    return ["spark" if s["ingest_and_embed"] == "success" else "driver" for s in states]


def _served_items(settings) -> set[str]:
    from lookalike.index.scann_index import load_rows
    from lookalike.index.versions import find_version, served_name

    return set(load_rows(find_version(settings, served_name(settings)))[1]["item_id"].to_pylist())


def test_weekly_training_dag_at_its_defaults_promotes_without_dropping_served_products(
    bootstrapped,
):
    """The weekly DAG with its default parameters (4 Hyperopt trials on SparkTrials, Horovod
    with 2 processes, the default ``convnet`` backbone, the schedule chosen from the
    catalogue), only fewer test queries. While it trains, photos land and the refresh serves
    them: the promotion brings the new encoder's index up to that catalogue, so every product
    served before it is served after it. Also the test of Hyperopt's MLflow runs, of
    ``spark_jobs/train.py --horovod`` and of rank 0 alone logging the training run."""
    from mlflow import MlflowClient

    from lookalike.catalog.table import table_version
    from lookalike.registry.aliases import CATALOG_VERSION_TAG
    from lookalike.similarity.registry import production_version

    api, settings, home = bootstrapped.airflow, bootstrapped.settings(), bootstrapped.home
    dag = "lookalike_train_and_promote"
    before = production_version(settings)
    api.set_paused(dag, False)
    api.set_paused("lookalike_catalog_refresh", False)
    try:
        run_id = api.trigger(dag, {"eval_limit": 200})
        _wait_for_task(api, dag, run_id, "train")
        landed = _land(settings, [6000, 6001])
        refresh = api.trigger("lookalike_catalog_refresh")
        assert api.wait("lookalike_catalog_refresh", refresh, timeout=1200) == "success"
        served_before = _served_items(settings)
        assert set(landed) <= served_before
        state = api.wait(dag, run_id, timeout=3600)
        assert state == "success", api.task_states(dag, run_id)
    finally:
        api.set_paused(dag, True)
        api.set_paused("lookalike_catalog_refresh", True)

    runs = home / "runs" / dag
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

    # promoted: the new encoder serves, at the catalogue the refresh had reached
    after = production_version(settings)
    assert after is not None and int(after.version) > int(before.version), train["metrics"]
    assert after.tags["lookalike.encoder"].endswith(f"/{train['model_version']}")
    assert int(after.tags[CATALOG_VERSION_TAG]) == table_version(settings.catalog_uri)
    champion = client.get_model_version_by_alias(settings.encoder_model_name, "champion")
    assert str(champion.version) == str(train["model_version"])
    assert served_before <= _served_items(settings)
    c = bootstrapped.service
    _waiter(c)(str(after.version))
    for item_id in landed:
        assert c.get(f"/v1/items/{item_id}").status_code == 200


def _wait_for_task(api, dag: str, run_id: str, task: str, timeout: float = 1800) -> None:
    """Until ``task`` of the run is running; fails at once when the run fails before it."""
    from tests.support.server import wait_for

    def running() -> bool:
        if api.state(dag, run_id) == "failed":
            raise AssertionError(f"{dag} failed before {task}: {api.task_states(dag, run_id)}")
        return api.task_states(dag, run_id).get(task) == "running"

    wait_for(running, timeout=timeout, every=2)


def test_a_scheduled_refresh_first_runs_at_its_next_time_and_succeeds(bootstrapped, tmp_path):
    """Its own Airflow (fresh metadata database) with the refresh every minute: unpausing
    starts nothing at once; the scheduler starts the first run itself at the next minute,
    and it succeeds (nothing landed since the last refresh: no re-index, no publish)."""
    from tests.support.airflow import AirflowApi, airflow_services, user_env
    from tests.support.server import free_port, wait_for

    dag = "lookalike_catalog_refresh"
    port = free_port()
    env = user_env(
        tmp_path / "airflow",
        bootstrapped.home,
        port,
        LOOKALIKE_REFRESH_SCHEDULE="* * * * *",
        # the next run is worked out at each parse: every 5 s here, so the one stored when the
        # DAG is unpaused was worked out after the every-minute grace (6 s) had passed
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="5",
        LOOKALIKE_SPARK_DRIVER_MEMORY="1g",
        MLFLOW_TRACKING_URI=UNCONFIGURED_MLFLOW,
        MLFLOW_REGISTRY_URI=UNCONFIGURED_MLFLOW,
    )
    env.pop("LOOKALIKE_SERVE_URL", None)  # no service to confirm
    migrate = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, timeout=300
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    with airflow_services(env, port, tmp_path / "logs", cwd=workdir) as url:
        api = AirflowApi(url, tmp_path / "airflow")
        api.wait_for_dags([dag])
        while not 20 <= time.gmtime().tm_sec <= 45:  # past the grace (6 s) and a parse (5 s)
            time.sleep(1)
        api.set_paused(dag, False)
        unpaused_at = time.time()
        try:
            runs = wait_for(lambda: api.runs(dag), timeout=150, every=1)
            first = runs[0]
            assert first["run_type"] == "scheduled"
            assert _epoch(first["run_after"]) >= unpaused_at - 1, (first, unpaused_at)
            state = api.wait(dag, first["dag_run_id"], timeout=600)
            assert state == "success", api.task_states(dag, first["dag_run_id"])
            states = api.task_states(dag, first["dag_run_id"])
            assert states["ingest_landing"] == "success" and states["reindex"] == "skipped"
        finally:
            api.set_paused(dag, True)
    assert not {p.name for p in workdir.iterdir()} & {"mlflow.db", "mlruns"}


def test_the_stack_gets_a_users_environment_not_the_test_process(stack):
    """The processes above get what scripts/env.sh gives a user: not this process's own
    variables (its session-wide home, its S3 test server's port, pytest's own)."""
    assert stack.env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert stack.env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")
    assert stack.env["LOOKALIKE_HOME"] == str(stack.home) != os.environ["LOOKALIKE_HOME"]
    mine = {k for k in os.environ if k.startswith(("PYTEST_", "LOOKALIKE_TEST_"))}
    assert mine and not mine & set(stack.env)
