"""Floors under the reactive need: a warm buffer, scheduled floors and the predictive
floor. Each may only raise the replica count; each says why when it is what decides.

- standby: `scaling.standby` replicas on top of the need, also while idle, for bursts
  and cold starts that cannot wait for a pod to start;
- schedules: from a schedule's `start` until its next `end` (cron, in its time zone),
  at least its `minReplicas`, the highest active one winning;
- predicted: the replicas the rate predicted one start-up time ahead needs, with the
  same square-root staffing as the load signal; in Preview mode it is only reported.
"""

from __future__ import annotations

import dataclasses
import datetime
import zoneinfo

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec, ScheduledFloor
from trimtab.reconcile import cron
from trimtab.reconcile.agentpool import need as need_mod


@dataclasses.dataclass(frozen=True)
class Floor:
    replicas: int
    why: str


@dataclasses.dataclass(frozen=True)
class Floors:
    standby: int
    schedule: Floor | None  # the highest active scheduled floor
    predicted: Floor | None  # the predictive floor, acting or not
    acting_prediction: bool  # predictive mode On
    problems: tuple[str, ...]  # schedules that cannot be read, and why

    def lowest(self) -> Floor | None:
        """The floor the decision may not go below, before standby is added."""
        candidates = [self.schedule] if self.schedule else []
        if self.predicted and self.acting_prediction:
            candidates.append(self.predicted)
        return max(candidates, key=lambda f: f.replicas, default=None)


def floors(
    spec: AgentPoolSpec, *, now: float, predicted_rate: float | None, service: float
) -> Floors:
    scaling = spec.scaling
    schedule, problems = scheduled(scaling.schedules, now=now)
    predicted = None
    if scaling.predictive.mode != "Disabled" and predicted_rate is not None:
        predicted = _predicted(spec, predicted_rate, service)
    return Floors(
        scaling.standby, schedule, predicted, scaling.predictive.mode == "Enabled", problems
    )


def _predicted(spec: AgentPoolSpec, rate: float, service: float) -> Floor:
    slots = need_mod.staffed_slots(rate, service, spec.scaling.targets)
    replicas = need_mod.ceil(slots / spec.worker.concurrency)
    cycle = spec.scaling.predictive.period_seconds
    why = f"the last cycles ({cycle} s) predict {rate:.1f}/s, needing {replicas} replicas"
    return Floor(replicas, why)


def scheduled(
    schedules: list[ScheduledFloor], *, now: float
) -> tuple[Floor | None, tuple[str, ...]]:
    """The highest active scheduled floor, and a line for each schedule that cannot be
    read (it is skipped, and status says so)."""
    active: list[Floor] = []
    problems: list[str] = []
    for schedule in schedules:
        try:
            on = is_on(schedule, now=now)
        except (cron.CronError, zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            problems.append(f"schedule {schedule.name} ignored: {exc}")
            continue
        if on:
            why = f"schedule {schedule.name} holds {schedule.min_replicas} replicas"
            active.append(Floor(schedule.min_replicas, why))
    return max(active, key=lambda f: f.replicas, default=None), tuple(problems)


def is_on(schedule: ScheduledFloor, *, now: float) -> bool:
    """Whether the schedule's latest start came after its latest end (a start and an end
    in the same minute leave it off)."""
    zone = _zone(schedule.timezone)
    at = datetime.datetime.fromtimestamp(now, zone)
    started = cron.parse(schedule.start).last_fired(at)
    ended = cron.parse(schedule.end).last_fired(at)
    return started is not None and (ended is None or started > ended)


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
