"""Faults and concurrency on the write paths, with the real CLI in its own processes.

- SIGKILL at named crash points (``lookalike.faults``) of a catalogue MERGE, an index update,
  its embeddings MERGE and its bundle publish: after each kill, every reader (index versions
  and their checksums, the registry's production bundle as the service loads it, the
  embeddings table) sees only whole versions, and the next run recovers.
- Two index updates started together, five times; then an update beside a full build for a
  new encoder (what a promotion does): serialised by the writers' lease (``lookalike.locks``)
  or refused with a clear error, and the result is consistent (one encoder, every catalogue
  item once, deletes honoured, production on the latest index).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lookalike import faults
from lookalike.similarity.config import TrainConfig
from tests.support.builders import FASHION_MNIST_DIR, REPO, TINY_TRAIN

pytestmark = pytest.mark.slow  # a dozen CLI processes, each importing TensorFlow: minutes

#: Crash points of `lookalike index update` (which publishes the bundle), in run order.
UPDATE_POINTS = [
    "lease.taken",
    "embeddings.merge_source_read",
    "embeddings.committed",
    "index.written_before_rename",
    "index.published",
    "bundle.logged",
    "bundle.registered",
    "bundle.alias_moved",
]


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    """A catalogue (300 train + 300 test), one encoder, index v000001 in production."""
    from lookalike.catalog.ingest import ingest_fashion_mnist
    from lookalike.config import Settings
    from lookalike.similarity.promotion import promote
    from lookalike.similarity.training import run_training

    settings = Settings(home=tmp_path_factory.mktemp("faults-home"), spark_shuffle_partitions=4)
    ingest_fashion_mnist(spark, settings=settings, limit=300)
    trained = run_training(TrainConfig.from_dict(TINY_TRAIN), settings=settings, eval_limit=200)
    promote(settings, challenger=trained.model_version, spark=spark)
    return settings, trained.model_version


class Landing:
    """The retailer's landing folder: each ``step`` lands two new photos and removes one
    landed earlier, then ingests it (one catalogue commit)."""

    def __init__(self, settings, spark) -> None:
        self.settings, self.spark, self.next, self.landed = settings, spark, 0, {}

    def photos(self, n: int) -> None:
        from tests.support.photos import land_fashion_mnist_photos

        new = range(self.next, self.next + n)
        self.landed |= land_fashion_mnist_photos(
            FASHION_MNIST_DIR, self.settings.landing_uri, new, mirror=True
        )
        self.next += n

    def step(self, *, ingest: bool = True) -> None:
        from lookalike import storage
        from lookalike.catalog.ingest import ingest_folder

        if self.landed:
            gone = sorted(self.landed)[0]
            storage.remove_file(self.landed.pop(gone))
        self.photos(2)
        if ingest:
            ingest_folder(
                self.spark,
                self.settings.landing_uri,
                settings=self.settings,
                source="landing",
                delete_missing=True,
            )


def _cli(settings, *args: str, crash: str | None = None) -> subprocess.CompletedProcess:
    return _start(settings, *args, crash=crash, wait=True)


def _start(settings, *args: str, crash: str | None = None, wait: bool = False):
    env = os.environ | {"LOOKALIKE_HOME": str(settings.home)}
    env.pop(faults.ENV, None)
    if crash:
        env[faults.ENV] = crash
    cmd = [sys.executable, "-m", "lookalike.cli", *args]
    if wait:
        return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    return subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _readers_see_whole_versions(settings) -> dict:
    """What every reader sees: published index versions whole (manifest and checksums),
    nothing visible without its manifest, the production bundle loadable as the service
    loads it and built on a published version, each (item, encoder version) embedded once.
    Returns the production bundle's manifest."""
    from lookalike.index import scann_index as sx
    from lookalike.index.versions import list_versions
    from lookalike.similarity.registry import production_version
    from serving.state import load_live

    root = Path(settings.index_uri)
    visible = list_versions(settings)
    for folder in root.iterdir():
        if folder.name.startswith("v"):
            assert (folder / sx.MANIFEST).is_file(), f"{folder.name} is visible half-written"
    for name in visible:
        sx.verify_version(root / name)
    live = load_live(settings, str(production_version(settings).version))
    assert live.rec.manifest["index_version"] in visible
    emb = DeltaTable(settings.embeddings_uri).to_pyarrow_table(
        columns=["item_id", "encoder_version"]
    )
    keys = list(zip(emb["item_id"].to_pylist(), emb["encoder_version"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys)), "an item embedded twice by one encoder version"
    return live.rec.manifest


def _consistent(settings) -> dict:
    """The latest index holds every catalogue item once (deleted ones gone), with one
    encoder, and production serves it. Returns its manifest."""
    from lookalike.index import scann_index as sx
    from lookalike.index.versions import latest_version

    manifest = _readers_see_whole_versions(settings)
    latest = latest_version(settings)
    assert manifest["index_version"] == latest.name, "production is not on the latest index"
    _, items = sx.load_rows(latest)
    indexed = items.column("item_id").to_pylist()
    catalogue = DeltaTable(settings.catalog_uri).to_pyarrow_table(columns=["item_id"])
    assert len(indexed) == len(set(indexed))
    assert set(indexed) == set(catalogue["item_id"].to_pylist())
    return manifest


def test_sigkill_at_every_crash_point_leaves_only_whole_versions(world, spark):
    settings, _ = world
    landing = Landing(settings, spark)
    # A catalogue MERGE killed as it starts commits nothing; the rerun commits it once.
    landing.step(ingest=False)
    version = DeltaTable(settings.catalog_uri).version()
    ingest = ["ingest", "folder", settings.landing_uri, "--source", "landing", "--delete-missing"]
    killed = _cli(settings, *ingest, crash="catalog.merge_starting")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert DeltaTable(settings.catalog_uri).version() == version
    done = _cli(settings, *ingest)
    assert done.returncode == 0, done.stderr[-2000:]
    assert DeltaTable(settings.catalog_uri).version() == version + 1

    for point in UPDATE_POINTS:
        killed = _cli(settings, "index", "update", crash=point)
        assert killed.returncode == -9, f"{point}: {killed.stderr[-2000:]}"
        _readers_see_whole_versions(settings)
        landing.step()  # the next run has new work beside what the killed one left

    done = _cli(settings, "index", "update")
    assert done.returncode == 0, done.stderr[-3000:]
    _consistent(settings)


def _summary(proc: subprocess.Popen) -> tuple[int, dict | None, str]:
    out, err = proc.communicate(timeout=900)
    return proc.returncode, (json.loads(out) if proc.returncode == 0 else None), err


def test_updates_started_together_are_serialised(world, spark):
    from lookalike.index.versions import latest_name

    settings, _ = world
    landing = Landing(settings, spark)
    for _ in range(5):
        landing.step()
        before = latest_name(settings)
        pair = [_start(settings, "index", "update") for _ in range(2)]
        results = [_summary(p) for p in pair]
        assert [rc for rc, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
        kinds = sorted(s["kind"] for _, s, _ in results)
        assert kinds == ["none", "update"], kinds  # the second found the first's version
        assert int(latest_name(settings)[1:]) == int(before[1:]) + 1
        _consistent(settings)


def test_an_update_beside_a_full_build_for_a_new_encoder(world, spark):
    from lookalike.similarity.training import run_training

    settings, _ = world
    new = run_training(
        TrainConfig.from_dict(TINY_TRAIN | {"seed": 7}), settings=settings, eval_limit=100
    ).model_version
    Landing(settings, spark).step()
    update = _start(settings, "index", "update")
    build = _start(settings, "index", "build", "--encoder", new)
    (u_rc, _, u_err), (b_rc, _, b_err) = _summary(update), _summary(build)
    assert b_rc == 0, b_err[-3000:]
    # the update either ran first, or after the build (then on its encoder), or published
    # its bundle too late and was refused: production never goes back to the old encoder
    assert u_rc == 0 or "serves already" in u_err, u_err[-3000:]
    manifest = _consistent(settings)
    assert str(manifest["encoder"]["version"]) == new
