"""The registry layer without a registry: the download-once cache (downloads faked), version
lookup (a fake client), alias moves, and the gate results' JSON."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from lookalike.registry import cache
from lookalike.registry.gate import Decision, GateResult, move_alias
from lookalike.registry.versions import VersionNotFound, find_version, get_version


@pytest.fixture
def downloads(monkeypatch):
    """``download_artifacts`` writes a model (``MLmodel`` one level down, as MLflow may) and
    counts calls; ``delay`` widens the race window."""
    import mlflow

    calls: list[str] = []
    state: dict = {"delay": 0.0, "mlmodel": True, "uris": set()}

    def fake(artifact_uri: str, dst_path: str, tracking_uri: str, registry_uri: str) -> str:
        calls.append(artifact_uri)
        state["uris"].add((tracking_uri, registry_uri))
        time.sleep(state["delay"])
        root = Path(dst_path) / "model"
        root.mkdir(parents=True)
        (root / "weights.bin").write_bytes(threading.current_thread().name.encode())
        if state["mlmodel"]:
            (root / "MLmodel").write_text("flavors: {}\n")
        return str(root)

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", fake)
    return calls, state


def test_cache_downloads_once_into_its_final_place(settings, downloads):
    calls, state = downloads
    first = cache.fetch_model(settings, cache.ENCODERS, "enc", "3")
    again = cache.fetch_model(settings, cache.ENCODERS, "enc", "3")
    assert first == again == settings.cache_dir / "encoders" / "enc-v3"
    assert (first / "MLmodel").is_file() and calls == ["models:/enc/3"]
    # from the deployment's registry, whatever MLflow store the process points at
    assert state["uris"] == {(settings.tracking_uri, settings.tracking_uri)}
    assert [p.name for p in first.parent.iterdir()] == ["enc-v3"]  # no temp dirs left


def test_cache_race_first_rename_wins_and_the_loser_discards_its_copy(settings, downloads):
    calls, state = downloads
    state["delay"] = 0.2
    got: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: got.append(cache.fetch_model(settings, cache.BUNDLES, "rec", "1")),
            name=f"t{i}",
        )
        for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dest = settings.cache_dir / "bundles" / "rec-v1"
    assert got == [dest] * 3 and len(calls) == 3
    assert (dest / "MLmodel").is_file()
    assert [p.name for p in dest.parent.iterdir()] == ["rec-v1"]


def test_cache_replaces_a_broken_copy_and_refuses_a_download_without_a_model(settings, downloads):
    _, state = downloads
    broken = settings.cache_dir / "bundles" / "rec-v2"
    broken.mkdir(parents=True)
    (broken / "half.bin").write_bytes(b"x")
    assert (cache.fetch_model(settings, cache.BUNDLES, "rec", "2") / "MLmodel").is_file()
    state["mlmodel"] = False
    with pytest.raises(cache.CacheError, match="no MLmodel"):
        cache.fetch_model(settings, cache.BUNDLES, "rec", "3")
    assert sorted(p.name for p in broken.parent.iterdir()) == ["rec-v2"]


def test_cache_prune_keeps_what_is_asked(settings, downloads):
    for v in ("1", "2", "3"):
        cache.fetch_model(settings, cache.BUNDLES, "rec", v)
    cache.fetch_model(settings, cache.BUNDLES, "other", "1")
    assert sorted(cache.prune(settings, cache.BUNDLES, "rec", {"3"})) == ["1", "2"]
    assert sorted(p.name for p in (settings.cache_dir / "bundles").iterdir()) == [
        "other-v1",
        "rec-v3",
    ]


class FakeClient:
    """Versions by number and alias; errors as MLflow's stores raise them."""

    def __init__(self, versions: dict[str, str], aliases: dict[str, str], down: bool = False):
        self.versions, self.aliases, self.down = versions, aliases, down
        self.calls: list[tuple] = []

    def get_model_version(self, name: str, version: str) -> str:
        if self.down:
            raise MlflowException("connection refused", error_code="INTERNAL_ERROR")
        if version not in self.versions:
            raise MlflowException(
                f"Model Version (name={name}, version={version}) not found",
                error_code="RESOURCE_DOES_NOT_EXIST",
            )
        return self.versions[version]

    def get_model_version_by_alias(self, name: str, alias: str) -> str:
        if alias not in self.aliases:
            raise MlflowException(
                f"Registered model alias {alias} not found.",
                error_code="INVALID_PARAMETER_VALUE",
            )
        return self.get_model_version(name, self.aliases[alias])

    def set_model_version_tag(self, *args: str) -> None:
        self.calls.append(("tag", *args))

    def set_registered_model_alias(self, *args: str) -> None:
        self.calls.append(("alias", *args))


def test_versions_by_number_or_alias_and_not_found_is_not_an_outage():
    client = FakeClient({"1": "v1", "2": "v2"}, {"champion": "2"})
    assert get_version("m", "1", client=client) == "v1"
    assert get_version("m", "champion", client=client) == "v2"
    assert find_version("m", "7", client=client) is None
    assert find_version("m", "production", client=client) is None
    with pytest.raises(VersionNotFound, match="'m' has no version or alias 'production'"):
        get_version("m", "production", client=client)
    down = FakeClient({}, {"champion": "2"}, down=True)
    with pytest.raises(MlflowException, match="connection refused"):
        find_version("m", "champion", client=down)


def test_move_alias_remembers_the_previous_version():
    client = FakeClient({}, {})
    move_alias(client, "m", "production", "3", previous="2", previous_tag="prev")
    move_alias(client, "m", "production", "4", previous=None, previous_tag="prev")
    move_alias(client, "m", "production", "4", previous="4", previous_tag="prev")
    assert client.calls == [
        ("tag", "m", "3", "prev", "2"),
        ("alias", "m", "production", "3"),
        ("alias", "m", "production", "4"),
        ("alias", "m", "production", "4"),
    ]


DECISION = Decision(True, "no champion yet", "ndcg_at_10", "2", None, 0.3, None, 0.0)


def test_gate_results_keep_their_json():
    from lookalike.shopper.promotion import ShopperPromotion
    from lookalike.similarity.promotion import PromotionResult

    shop = ShopperPromotion(
        decision=DECISION,
        run_id="r",
        challenger_metrics={"ndcg_at_10": 0.3},
        interactions_version=4,
        production_before="1",
        moved={"production": "2"},
    )
    assert isinstance(shop, GateResult) and shop.production == "2"
    assert list(shop.to_dict()) == [
        "promote",
        "reason",
        "metric",
        "challenger_version",
        "production_before",
        "production",
        "challenger_metrics",
        "production_metrics",
        "baseline_metrics",
        "interactions_version",
        "run_id",
    ]
    enc = PromotionResult(decision=DECISION, run_id="r", challenger_metrics={}, catalog_version=3)
    d = enc.to_dict()
    assert list(d) == [
        "decision",
        "catalog_version",
        "challenger_metrics",
        "champion_metrics",
        "run_id",
        "baseline_metrics",
        "index",
        "bundle",
        "moved",
        "catch_up",
    ]
    assert PromotionResult.from_dict(d) == enc


def test_production_never_moves_to_an_older_index_version():
    from types import SimpleNamespace

    from lookalike.config import Settings
    from lookalike.registry.aliases import INDEX_VERSION_TAG
    from lookalike.similarity.registry import BundleSuperseded, _refuse_superseded

    settings = Settings()
    serving = SimpleNamespace(version="7", tags={INDEX_VERSION_TAG: "v000012"})
    with pytest.raises(BundleSuperseded, match=r"v000011 is older than v000012.*bundle v7"):
        _refuse_superseded(settings, serving, "v000011")
    _refuse_superseded(settings, serving, "v000012")  # the same index: a rerun
    _refuse_superseded(settings, serving, "v000013")
    _refuse_superseded(settings, None, "v000001")  # nothing served yet
