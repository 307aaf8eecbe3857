"""Time windows a policy names: one-off or weekly, in UTC, and whether one is open now."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from changegate.models import Contract
from changegate.policy.targets import matches_any

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Back-to-back occurrences (e.g. `sat` and `sun`, all day) read as one window; a window
# that never closes is reported as ending after this many hops instead of looping forever.
_MAX_CHAINED = 8


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_utc(moment: datetime) -> str:
    """`2025-06-01 14:00 UTC` (seconds shown when not zero), as every policy message puts it."""
    moment = as_utc(moment)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if moment.second else "%Y-%m-%d %H:%M UTC")


class WeeklySchedule(Contract):
    """A window that recurs on `days` from `start_time` to `end_time`, both UTC.

    An `end_time` at or before `start_time` runs past midnight into the next day; equal
    times mean a whole 24 hours.
    """

    days: list[Weekday] = Field(min_length=1)
    start_time: time
    end_time: time

    @field_validator("start_time", "end_time")
    @classmethod
    def _utc_time(cls, value: time) -> time:
        offset = value.utcoffset()
        if offset is not None and offset != timedelta(0):
            raise ValueError("weekly times are UTC; drop the offset or convert the time")
        return value.replace(tzinfo=None)

    def occurrence_end(self, moment: datetime) -> datetime | None:
        """When the occurrence open at `moment` (UTC) ends, or None between occurrences."""
        for days_back in (0, 1):
            day: date = (moment - timedelta(days=days_back)).date()
            if _WEEKDAYS[day.weekday()] not in self.days:
                continue
            start = datetime.combine(day, self.start_time, UTC)
            end = datetime.combine(day, self.end_time, UTC)
            if end <= start:
                end += timedelta(days=1)
            if start <= moment < end:
                return end
        return None


class Window(Contract):
    """A named period over some targets: either `start`/`end` once, or `weekly`."""

    name: str = Field(min_length=1, max_length=200)
    targets: list[str] = Field(default_factory=lambda: ["*"])
    reason: str = ""
    start: datetime | None = None
    end: datetime | None = None
    weekly: WeeklySchedule | None = None

    @field_validator("start", "end")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @model_validator(mode="after")
    def _one_schedule(self) -> Window:
        once = self.start is not None or self.end is not None
        if once and self.weekly is not None:
            raise ValueError("give either start and end, or weekly, not both")
        if not once and self.weekly is None:
            raise ValueError("needs a schedule: start and end (ISO datetimes, UTC) or weekly")
        if once and (self.start is None or self.end is None):
            raise ValueError("a one-off window needs both start and end")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(
                f"end ({format_utc(self.end)}) must be after start ({format_utc(self.start)})"
            )
        return self

    def covers(self, label: str) -> bool:
        """True when one of the window's target globs matches `label`."""
        return matches_any(label, self.targets)

    def active_until(self, now: datetime) -> datetime | None:
        """When the window open at `now` closes, or None if it is not open at `now`."""
        end = self._end_at(as_utc(now))
        if end is None:
            return None
        for _ in range(_MAX_CHAINED):
            following = self._end_at(end)
            if following is None or following <= end:
                break
            end = following
        return end

    def _end_at(self, moment: datetime) -> datetime | None:
        if self.weekly is not None:
            return self.weekly.occurrence_end(moment)
        if self.start is not None and self.end is not None and self.start <= moment < self.end:
            return self.end
        return None

    def describe(self) -> str:
        """`'name' (reason)`, as messages name the window."""
        return f"'{self.name}'" + (f" ({self.reason})" if self.reason else "")
