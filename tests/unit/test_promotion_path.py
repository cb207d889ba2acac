"""The one promotion path both products take (``lookalike.registry.promotion``), against a fake
MLflow client: aliases move all or nothing under a writer lease, each version remembers the one
it replaces, and a failure marks the gate run ``promote-failed`` and is re-raised."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from lookalike import locks
from lookalike.registry import promotion
from lookalike.registry.promotion import AliasMove, move_aliases, put_in_place

TAG = "lookalike.previous"


class FakeRegistry:
    """Aliases per registered model, tags per version and run; ``fail_on`` makes that
    ``set_registered_model_alias`` call (1-based) refuse, as a registry outage would."""

    def __init__(self, aliases: dict[tuple[str, str], str], fail_on: int | None = None):
        self.aliases = dict(aliases)
        self.fail_on = fail_on
        self.alias_calls = 0
        self.version_tags: dict[tuple[str, str], dict[str, str]] = {}
        self.run_tags: dict[str, dict[str, str]] = {}

    def get_model_version_by_alias(self, name: str, alias: str) -> object:
        if (name, alias) not in self.aliases:
            raise MlflowException(
                f"Registered model alias {alias} not found.", error_code="INVALID_PARAMETER_VALUE"
            )
        return type("ModelVersion", (), {"version": self.aliases[(name, alias)]})()

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.version_tags.setdefault((name, version), {})[key] = value

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.alias_calls += 1
        if self.alias_calls == self.fail_on:
            raise MlflowException(f"registry refused moving {alias}")
        self.aliases[(name, alias)] = version

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        del self.aliases[(name, alias)]

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.run_tags.setdefault(run_id, {})[key] = value


MOVES = [
    AliasMove("encoder", "champion", "2", TAG),
    AliasMove("bundle", "production", "7", TAG),
]


def test_every_alias_moves_and_remembers_the_version_it_replaces():
    client = FakeRegistry({("encoder", "champion"): "1"})
    assert move_aliases(client, MOVES) == ["1", None]
    assert client.aliases == {("encoder", "champion"): "2", ("bundle", "production"): "7"}
    assert client.version_tags == {("encoder", "2"): {TAG: "1"}}  # nothing before on "bundle"


@pytest.mark.parametrize("before", ["1", None], ids=["put-back", "deleted"])
def test_a_failed_second_move_puts_the_first_back(before):
    """All or nothing: the first alias returns to its version, or goes away when it pointed
    nowhere; the second never moved; the failure is the caller's to see."""
    aliases = {("bundle", "production"): "6"}
    if before is not None:
        aliases[("encoder", "champion")] = before
    client = FakeRegistry(aliases, fail_on=2)
    with pytest.raises(MlflowException, match="refused moving production"):
        move_aliases(client, MOVES)
    assert client.aliases == aliases


def test_a_products_own_mover_is_used_and_undone_like_any_move():
    """The served bundle moves through its own rules (``mover``); when a later move fails it
    is put back to what the mover reported."""
    client = FakeRegistry({("bundle", "production"): "6"}, fail_on=1)

    def serve() -> str | None:  # moves without the client's alias call: champion's is the 1st
        client.aliases[("bundle", "production")] = "7"
        return "6"

    moves = [AliasMove("bundle", "production", "7", TAG, mover=serve), MOVES[0]]
    with pytest.raises(MlflowException, match="refused moving champion"):
        move_aliases(client, moves)
    assert client.aliases == {("bundle", "production"): "6"}


def test_put_in_place_marks_the_gate_run_and_holds_the_leases(settings):
    """A failure after the preparation: the run says ``promote-failed`` and why, the aliases
    are where they were, and both leases were held while it ran and are free after."""
    client = FakeRegistry({("encoder", "champion"): "1"}, fail_on=2)
    held: list[tuple[str, str]] = []

    def prepare() -> list[AliasMove]:
        for name in (locks.INDEXES, locks.PRODUCTION):
            holder = locks.current(settings.lock_uri(name))[1]
            held.append((name, holder.purpose if holder else "free"))
        return MOVES

    with pytest.raises(MlflowException, match="refused moving production"):
        put_in_place(
            settings,
            client,
            "run-1",
            purpose="promote encoder/2",
            prepare=prepare,
            lease=locks.PRODUCTION,
            hold=locks.INDEXES,
        )
    assert held == [(locks.INDEXES, "promote encoder/2"), (locks.PRODUCTION, "free")]
    assert client.aliases == {("encoder", "champion"): "1"}
    assert client.run_tags["run-1"]["decision"] == "promote-failed"
    assert "refused moving production" in client.run_tags["run-1"]["failure"]
    for name in (locks.INDEXES, locks.PRODUCTION):
        assert locks.current(settings.lock_uri(name))[1] is None


def test_a_failed_preparation_moves_nothing_and_marks_the_run(settings):
    client = FakeRegistry({})

    def prepare() -> list[AliasMove]:
        raise RuntimeError("index recall 0.91 < 0.98")

    with pytest.raises(RuntimeError, match="recall"):
        put_in_place(settings, client, "run-2", purpose="p", prepare=prepare, lease=locks.SHOPPER)
    assert client.alias_calls == 0 and client.aliases == {}
    assert client.run_tags["run-2"] == {
        "decision": "promote-failed",
        "failure": "index recall 0.91 < 0.98",
    }


def test_a_winner_is_put_in_place_under_the_lease(settings):
    client = FakeRegistry({("shopper", "production"): "3"})
    moved = put_in_place(
        settings,
        client,
        "run-3",
        purpose="promote shopper/4",
        prepare=lambda: [AliasMove("shopper", "production", "4", TAG)],
        lease=locks.SHOPPER,
    )
    assert moved == ["3"] and client.aliases == {("shopper", "production"): "4"}
    assert client.version_tags == {("shopper", "4"): {TAG: "3"}} and client.run_tags == {}


def test_decide_and_record_names_each_set_of_metrics(settings, monkeypatch):
    """The run's metric prefixes: ``challenger``, the product's name for its champion, and the
    baseline's name (``raw pixels`` -> ``baseline_raw_pixels``), as both products logged them."""
    recorded: dict = {}

    def record(settings, **kwargs):
        recorded.update(kwargs)
        return "run-4"

    monkeypatch.setattr(promotion, "record_decision", record)
    decision, run_id = promotion.decide_and_record(
        settings,
        experiment="exp",
        model_name="m",
        metric="p1",
        margin=0.0,
        challenger=("2", {"p1": 0.8}),
        champion=("1", {"p1": 0.7}),
        baseline=("raw pixels", {"p1": 0.5}),
        params={"metric": "p1"},
        champion_label="production",
    )
    assert run_id == "run-4" and decision.promote and decision.champion_version == "1"
    assert recorded["metrics"] == {
        "challenger": {"p1": 0.8},
        "production": {"p1": 0.7},
        "baseline_raw_pixels": {"p1": 0.5},
    }
    assert recorded["experiment"] == "exp" and recorded["decision"] is decision
