"""Five-field cron expressions (minute hour day-of-month month day-of-week), as the
scheduled floors of AgentPools use them, with the latest time an expression fired.

The grammar is the one Kubernetes CronJobs and KEDA's cron scaler accept: `*`, numbers,
ranges `a-b`, lists `a,b`, steps `*/n` and `a-b/n`, month and day names (`jan`, `mon`),
day-of-week 0-7 with 0 and 7 both Sunday; when both day fields are restricted, a day
matching either fires (Vixie cron). Pure and dependency-free: a schedule is checked
every tick, and finding the last firing skips whole months, days and hours.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names for the values from `lowest` on)
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_SEARCH_DAYS = 366 * 5  # far enough back for any valid expression, such as 29 February


class CronError(ValueError):
    """A cron expression that does not parse; the message names the field and the text."""


@dataclasses.dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is `*`
    any_weekday: bool  # day of week is `*`

    def day_matches(self, day: datetime.date) -> bool:
        weekday = day.isoweekday() % 7
        in_month, in_week = day.day in self.days, weekday in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def last_fired(self, at: datetime.datetime) -> datetime.datetime | None:
        """The latest minute at or before `at` (in `at`'s time zone) the expression fired."""
        t = at.replace(second=0, microsecond=0)
        floor = t - datetime.timedelta(days=_SEARCH_DAYS)
        while t >= floor:
            if t.month not in self.months or not self.day_matches(t.date()):
                t = t.replace(hour=23, minute=59) - datetime.timedelta(days=1)
                continue
            hour = _at_most(self.hours, t.hour)
            if hour is None:
                t = t.replace(hour=23, minute=59) - datetime.timedelta(days=1)
            elif hour < t.hour:
                t = t.replace(hour=hour, minute=59)
            elif (minute := _at_most(self.minutes, t.minute)) is None:
                t = t.replace(minute=59) - datetime.timedelta(hours=1)
            else:
                return t.replace(minute=minute)
        return None


def _at_most(allowed: frozenset[int], value: int) -> int | None:
    """The largest allowed value not above `value`."""
    return max((v for v in allowed if v <= value), default=None)


@functools.lru_cache(maxsize=1024)
def parse(text: str) -> Cron:
    """The expression's allowed values per field; CronError says what is wrong."""
    parts = text.split()
    if len(parts) != len(_FIELDS):
        raise CronError(f"cron {text!r}: want 5 fields (minute hour day month weekday)")
    sets = [_field(part, *spec, text=text) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    minutes, hours, days, months, _ = sets
    return Cron(minutes, hours, days, months, weekdays, parts[2] == "*", parts[4] == "*")


def _field(
    part: str, name: str, low: int, high: int, names: tuple[str, ...], *, text: str
) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        values |= _item(item.lower(), low, high, names, where=f"cron {text!r}: {name} {part!r}")
    return frozenset(values)


def _item(item: str, low: int, high: int, names: tuple[str, ...], *, where: str) -> set[int]:
    span, _, step_text = item.partition("/")
    step = _number(step_text, (), 0, where=where) if step_text else 1
    if step < 1:
        raise CronError(f"{where}: a step must be at least 1")
    if span == "*":
        first, last = low, high
    else:
        first_text, dash, last_text = span.partition("-")
        first = _number(first_text, names, low, where=where)
        last = _number(last_text, names, low, where=where) if dash else first
        if step_text and not dash:
            last = high
    if not low <= first <= last <= high:
        raise CronError(f"{where}: values must lie in {low}-{high}, in order")
    return set(range(first, last + 1, step))


def _number(text: str, names: tuple[str, ...], low: int, *, where: str) -> int:
    if text in names:
        return names.index(text) + low
    if not text.isdigit():
        raise CronError(f"{where}: {text!r} is not a number")
    return int(text)
