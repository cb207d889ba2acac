"""The scheduled DAGs' first automated run is their next cron time, never a past one, whatever
the time of day or week: asked the way the dag-processor asks (the DAG serialized, the
timetable deserialized from it, the DAG's own start/end/catchup restriction), "now" frozen."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pendulum
import pytest
from croniter import croniter

SCHEDULED = {
    "lookalike_catalog_refresh": "refresh_schedule",
    "lookalike_shopper_model": "shopper_schedule",
    "lookalike_train_and_promote": "train_schedule",
}
UTC = pendulum.UTC
# The measured failure: `make demo` done at 01:35 UTC on Monday 2026-12-07 started the
# 02:00 (Sunday), 03:00 (Sunday) and Sunday 04:00 runs at once.
DEMO_DONE = pendulum.datetime(2026, 12, 7, 1, 35, tz=UTC)


@contextmanager
def frozen_utcnow(moment: datetime.datetime) -> Iterator[None]:
    """Freeze the clock the cron timetables read (each module imported `utcnow` by name)."""
    moment = pendulum.instance(moment)
    with (
        mock.patch("lookalike_airflow.timetables.utcnow", lambda: moment),
        mock.patch("airflow.timetables.trigger.utcnow", lambda: moment),
    ):
        yield


def next_automated_run(dag, now: datetime.datetime, last_run_at: datetime.datetime | None = None):
    """When the scheduler would start ``dag``'s next scheduled run, computed at ``now`` as the
    dag-processor does at every parse (`DagModel.calculate_dagrun_date_fields`): the serialized
    DAG's timetable and restriction, after the automated run at ``last_run_at`` if any."""
    from airflow.timetables.base import DagRunInfo

    last = None if last_run_at is None else DagRunInfo.interval(last_run_at, last_run_at)
    with frozen_utcnow(now):
        info = _serialized(dag).next_dagrun_info(last_automated_run_info=last)
    assert info is not None and info.logical_date == info.run_after
    return info.run_after


@functools.cache
def _serialized(dag):
    """The DAG as the dag-processor stores it (JSON) and reads it back to plan the next run
    (it caches the deserialized DAG it delegates `next_dagrun_info` to)."""
    from airflow.serialization.serialized_objects import LazyDeserializedDAG

    return LazyDeserializedDAG.from_dag(dag)


def _cron(dag_id: str) -> str:
    from lookalike.config import get_settings

    return getattr(get_settings(), SCHEDULED[dag_id])


def _cron_times(cron: str, after: datetime.datetime, count: int) -> list[pendulum.DateTime]:
    it = croniter(cron, after)
    return [pendulum.instance(it.get_next(datetime.datetime)) for _ in range(count)]


def _moments(cron: str) -> list[pendulum.DateTime]:
    """The demo's moment, around each cron time of 9 days (a second before, a second past the
    grace, an hour after), and every 7 minutes of those days (all times of day and week) but
    the grace minutes after a cron time (the run due then starts: the test after next)."""
    from lookalike_airflow.timetables import GRACE

    second = datetime.timedelta(seconds=1)
    around = [
        t + d
        for t in _cron_times(cron, DEMO_DONE.subtract(days=1), 10)
        for d in (-second, GRACE + second, datetime.timedelta(hours=1))
    ]
    sweep = [DEMO_DONE.add(minutes=7 * i) for i in range(9 * 24 * 60 // 7)]
    sweep = [t for t in sweep if t - croniter(cron, t + second).get_prev(datetime.datetime) > GRACE]
    return [DEMO_DONE, *around, *sweep]


@pytest.mark.parametrize("dag_id", sorted(SCHEDULED))
def test_first_run_is_the_next_cron_time_whatever_the_time(dagbag, dag_id):
    dag, cron = dagbag.dags[dag_id], _cron(dag_id)
    for now in _moments(cron):
        first = next_automated_run(dag, now)
        assert first > now, (dag_id, now, first)
        assert first == croniter(cron, now).get_next(datetime.datetime), (dag_id, now, first)


def test_after_make_demo_at_0135_each_dag_waits_for_its_own_time(dagbag):
    firsts = {dag_id: next_automated_run(dagbag.dags[dag_id], DEMO_DONE) for dag_id in SCHEDULED}
    assert firsts == {
        "lookalike_catalog_refresh": pendulum.datetime(2026, 12, 7, 2, tz=UTC),
        "lookalike_shopper_model": pendulum.datetime(2026, 12, 7, 3, tz=UTC),
        "lookalike_train_and_promote": pendulum.datetime(2026, 12, 13, 4, tz=UTC),  # Sunday
    }


@pytest.mark.parametrize("dag_id", sorted(SCHEDULED))
def test_a_run_due_now_is_kept_while_the_scheduler_is_late(dagbag, dag_id):
    """The dag-processor recomputes the next run at every parse, also in the seconds between a
    cron time and the scheduler creating its run: that run must not move to the next time."""
    dag, cron = dagbag.dags[dag_id], _cron(dag_id)
    due, after = _cron_times(cron, DEMO_DONE, 2)
    before = pendulum.instance(croniter(cron, due).get_prev(datetime.datetime))
    for late in (0, 1, 30, 299):
        now = due.add(seconds=late)
        assert next_automated_run(dag, now) == due  # the first run ever
        assert next_automated_run(dag, now, last_run_at=before) == due  # a later one
    # once created, the next one is the following time, not the same one again
    assert next_automated_run(dag, due.add(seconds=1), last_run_at=due) == after


@pytest.mark.parametrize("dag_id", sorted(SCHEDULED))
def test_unpausing_after_a_week_starts_no_missed_run(dagbag, dag_id):
    dag, cron = dagbag.dags[dag_id], _cron(dag_id)
    last = _cron_times(cron, DEMO_DONE.subtract(days=9), 1)[0]
    for now in (DEMO_DONE, DEMO_DONE.add(hours=1, minutes=45), DEMO_DONE.add(days=3)):
        first = next_automated_run(dag, now, last_run_at=last)
        assert first == croniter(cron, now).get_next(datetime.datetime) and first > now


def test_the_grace_is_at_most_a_tenth_of_a_short_cron():
    from airflow.timetables.base import TimeRestriction
    from lookalike_airflow.timetables import OnTimeCron

    def first(cron: str, now: pendulum.DateTime) -> pendulum.DateTime:
        with frozen_utcnow(now):
            info = OnTimeCron(cron).next_dagrun_info(
                last_automated_data_interval=None, restriction=TimeRestriction(None, None, False)
            )
        return info.run_after

    noon = pendulum.datetime(2026, 12, 7, 12, tz=UTC)
    assert first("* * * * *", noon.add(seconds=5)) == noon  # 6 s
    assert first("* * * * *", noon.add(seconds=7)) == noon.add(minutes=1)
    assert first("*/5 * * * *", noon.add(seconds=30)) == noon  # 30 s
    assert first("*/5 * * * *", noon.add(minutes=2)) == noon.add(minutes=5)
    assert first("0 * * * *", noon.add(minutes=5)) == noon  # 5 min
    assert first("0 * * * *", noon.add(minutes=5, seconds=1)) == noon.add(hours=1)


def test_airflows_own_cron_timetable_would_start_a_past_run(dagbag):
    """Why the DAGs need `OnTimeCron`: Airflow 3.3's `CronTriggerTimetable` with catchup=False
    makes the latest past time the first run (with a start date; without one,
    `run_immediately=False` still does so up to a tenth of the gap). If this fails, Airflow
    changed and `OnTimeCron` may no longer be needed."""
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.trigger import CronTriggerTimetable

    def first(restriction: TimeRestriction, now: pendulum.DateTime) -> pendulum.DateTime:
        stock = CronTriggerTimetable("0 4 * * 0", timezone="UTC", run_immediately=False)
        with frozen_utcnow(now):
            info = stock.next_dagrun_info(
                last_automated_data_interval=None, restriction=restriction
            )
        return info.run_after

    sunday_4am = pendulum.datetime(2026, 12, 6, 4, tz=UTC)
    start = pendulum.datetime(2026, 1, 1, tz=UTC)
    assert first(TimeRestriction(start, None, False), DEMO_DONE) == sunday_4am
    assert first(TimeRestriction(None, None, False), sunday_4am.add(hours=10)) == sunday_4am


def test_catchup_and_serialization_stay_airflows():
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.trigger import CronTriggerTimetable
    from lookalike_airflow.timetables import OnTimeCron

    ours = OnTimeCron("0 2 * * *", grace=datetime.timedelta(minutes=2))
    back = decode_timetable(encode_timetable(ours))
    assert type(back) is OnTimeCron and back == ours and back.grace == ours.grace
    assert back.summary == "0 2 * * *"
    catchup = TimeRestriction(pendulum.datetime(2026, 11, 1, tz=UTC), None, True)
    stock = CronTriggerTimetable("0 2 * * *", timezone="UTC")
    with frozen_utcnow(DEMO_DONE):
        assert ours.next_dagrun_info(
            last_automated_data_interval=None, restriction=catchup
        ) == stock.next_dagrun_info(last_automated_data_interval=None, restriction=catchup)
