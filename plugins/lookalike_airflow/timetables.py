"""A cron timetable whose runs happen at their times only: unpausing a DAG (or starting Airflow)
never starts a run for a time that has already passed.

Airflow 3.3's ``CronTriggerTimetable`` with ``catchup=False`` makes the most recent past cron
time the next run (``max(self._align_to_prev(utcnow()), ...)`` in ``next_dagrun_info``), and
``run_immediately=False`` without a start date still runs a past time up to
``max(gap / 10, 5 min)`` old (2.4 h for a daily cron, 16.8 h for a weekly one). Here the next
run is the first cron time not older than ``grace``: the one due now when the scheduler is only
late (the dag-processor recomputes the next run every parse, also between a cron time and the
scheduler creating its run, so a first run exactly at its time is not skipped), else the next
one; ``grace`` is 5 minutes, at most a tenth of the cron's period. A time missed by more than
that (the DAG paused, Airflow stopped) is not made up: trigger the DAG by hand for that. With
``catchup=True`` (or a backfill) it behaves as Airflow's.

Registered with Airflow by the plugin in ``lookalike_airflow/__init__.py`` (the scheduler and
dag-processor deserialize it by its import path ``lookalike_airflow.timetables.OnTimeCron``).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from airflow._shared.timezones.timezone import coerce_datetime, parse_timezone, utcnow
from airflow.timetables.base import DagRunInfo
from airflow.timetables.trigger import CronTriggerTimetable

if TYPE_CHECKING:
    from airflow.timetables.base import DataInterval, TimeRestriction, Timetable
    from pendulum import DateTime
    from pendulum.tz.timezone import FixedTimezone, Timezone

GRACE = datetime.timedelta(minutes=5)


class OnTimeCron(CronTriggerTimetable):
    """``CronTriggerTimetable`` (zero-length data interval, run at the cron time) without the
    catch-up run of ``catchup=False``: the next run is the latest cron time if it is at most
    ``grace`` (capped at a tenth of the period) old, else the next one; never earlier than the
    one after the last scheduled run."""

    def __init__(
        self,
        cron: str,
        *,
        timezone: str | Timezone | FixedTimezone = "UTC",
        grace: datetime.timedelta = GRACE,
    ) -> None:
        super().__init__(cron, timezone=timezone, run_immediately=False)
        self._grace = grace

    @property
    def grace(self) -> datetime.timedelta:
        """How late a run may still start for its own cron time (scheduler lag)."""
        return self._grace

    def _due(self, now: DateTime) -> DateTime:
        """The cron time the next run is for, asked at ``now`` with no run after it."""
        latest = self._align_to_prev(now)
        grace = min(self._grace, (self._get_next(latest) - latest) / 10)
        return latest if now - latest <= grace else self._align_to_next(now)

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(
            data["expression"],
            timezone=parse_timezone(data["timezone"]),
            grace=datetime.timedelta(seconds=data["grace"]),
        )

    def serialize(self) -> dict[str, Any]:
        return super().serialize() | {"grace": self._grace.total_seconds()}

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        if restriction.catchup:
            return super().next_dagrun_info(
                last_automated_data_interval=last_automated_data_interval,
                restriction=restriction,
            )
        candidates = [self._due(coerce_datetime(utcnow()))]
        if last_automated_data_interval is not None:
            candidates.append(self._get_next(last_automated_data_interval.end))
        if restriction.earliest is not None:
            candidates.append(self._align_to_next(restriction.earliest))
        next_time = max(candidates)
        if restriction.latest is not None and restriction.latest < next_time:
            return None
        return DagRunInfo.interval(coerce_datetime(next_time - self._interval), next_time)
