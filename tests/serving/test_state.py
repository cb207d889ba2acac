"""What the shopper state says after each kind of registry poll: "not deployed" only when the
registry was read and no version carries the alias; "not ready" before the first read, while
the registry is unreachable and when the version it names fails to load. The registry read
and the load are scripted here (tests/serving/conftest.py reads a real, empty registry)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from serving.metrics import Metrics
from serving.state import (
    NOT_DEPLOYED,
    NOT_READY,
    SERVING,
    Followed,
    Live,
    NotDeployed,
    NotReady,
    ServiceState,
)
from tests.support.service import service_settings, shopper_live

UNREACHABLE = ConnectionError("registry down")


@dataclass
class ScriptedState(ServiceState):
    """A shopper ServiceState whose registry answers ``answers`` in turn (a version, None for
    no version, an exception for unreachable); version ``"bad"`` fails to load."""

    answers: list[str | Exception | None] = field(default_factory=list)

    def _alias_version(self) -> str | None:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _load(settings, version: str) -> Live:
    if version == "bad":
        raise ValueError("checksum mismatch")
    return shopper_live(version)


@pytest.fixture
def state(tmp_path) -> ScriptedState:
    settings = service_settings(tmp_path / "home")
    followed = Followed("shopper", settings.shopper_model_name, settings.shopper_alias, _load)
    return ScriptedState(settings=settings, metrics=Metrics(), followed=followed)


def _raised(state: ServiceState) -> NotReady:
    with pytest.raises(NotReady) as e:
        state.current()
    return e.value


def test_before_the_first_poll_it_is_not_ready_not_undeployed(state):
    assert state.status() == NOT_READY and type(_raised(state)) is NotReady


def test_no_version_under_the_alias_is_not_deployed(state):
    state.answers = [None]
    assert state.reload().action == "no-version"
    assert state.status() == NOT_DEPLOYED and type(_raised(state)) is NotDeployed


def test_an_unreachable_registry_forgets_that_none_was_deployed(state):
    state.answers = [None, UNREACHABLE]
    state.reload()
    assert state.reload().action == "unreachable"
    reason = _raised(state)
    assert state.status() == NOT_READY and type(reason) is NotReady
    assert str(reason) == "cannot read the registry: ConnectionError: registry down"


def test_a_version_that_fails_to_load_is_not_ready_with_the_reason(state):
    state.answers = [None, "bad"]
    state.reload()
    assert state.reload().action == "failed"
    reason = _raised(state)
    assert state.status() == NOT_READY and type(reason) is NotReady
    assert str(reason).endswith("version bad failed to load: ValueError: checksum mismatch")


def test_a_deployed_version_is_served_and_kept_while_the_registry_is_down(state):
    state.answers = [None, "3", UNREACHABLE]
    state.reload()
    assert state.reload().action == "swapped" and state.status() == SERVING
    state.reload()
    assert state.status() == SERVING and state.current().bundle_version == "3"
