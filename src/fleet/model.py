r"""The simulated instances of the demo fleet and the rules by which bad config hurts them.

This module is pure: no clock, no I/O, no randomness. Time advances only when `tick()` is called,
so the numbers below are exact and tests can assert them.

Degradation rules (the fleet's public behaviour):

Every tick each instance serves ``REQUESTS_PER_TICK`` = 5 requests. Its service needs ``demand``
concurrent connections (16 unless the spec says otherwise). From the instance's config:

* latency p99 in ms = ``40 * max(1, demand / pool_size) ** 2``.
* error fraction of the tick:

  1. ``version`` not matching ``^\d+\.\d+\.\d+$`` (e.g. ``1.5.0-rc1``, ``latest``) -> 1.0:
     the build does not exist, every request fails.
  2. otherwise, if ``pool_size < demand`` -> ``1 - pool_size / demand``: the requests that
     found no free connection.
  3. if the latency exceeds ``timeout_ms``, the fraction is at least 0.5: requests time out.

  ``log_level`` has no effect on health; it is the harmless knob for good changes.
* errors of the tick = ``round(requests * fraction)``, rounding halves up (2.5 -> 3).

Health is computed over the samples of the last window (``window_ticks`` ticks):
``error_rate`` = errors / requests in the window, ``latency_p99_ms`` = nearest-rank 99th
percentile of the window's requests, ``requests`` = requests in the window. The status is
``healthy`` if error_rate < 0.05, ``degraded`` if < 0.5, else ``failing``. Before the first tick
the window is empty: 0 requests, error_rate 0.0, latency 0.0, status ``healthy``.

A config write takes effect from the next tick on, so one full window after a write the health is
entirely the new config's.

With demand 16, for example: the defaults (pool 20, timeout 800 ms) give 40 ms and no errors;
pool 12 gives 71.1 ms and 1 error in 5 (degraded, 0.2); pool 8 gives 160 ms and 3 in 5
(failing, 0.6); timeout 30 ms gives 3 in 5 (failing, 0.6); version ``latest`` gives 5 in 5.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from typing import Final

from changegate.fleet.config import InstanceConfig
from changegate.fleet.views import HealthView, InstanceView

REQUESTS_PER_TICK: Final = 5
BASE_LATENCY_MS: Final = 40.0
TIMEOUT_ERROR_FRACTION: Final = 0.5
HEALTHY_BELOW: Final = 0.05
DEGRADED_BELOW: Final = 0.5

_RELEASED_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def latency_p99_ms(config: InstanceConfig, *, demand: int) -> float:
    """Return the p99 latency in ms an instance with `config` has under `demand` connections."""
    return BASE_LATENCY_MS * max(1.0, demand / config.pool_size) ** 2


def error_fraction(config: InstanceConfig, *, demand: int) -> float:
    """Return the fraction of requests that fail for `config` under `demand` connections."""
    if not _RELEASED_VERSION.match(config.version):
        return 1.0
    fraction = 1.0 - config.pool_size / demand if config.pool_size < demand else 0.0
    if latency_p99_ms(config, demand=demand) > config.timeout_ms:
        fraction = max(fraction, TIMEOUT_ERROR_FRACTION)
    return fraction


def status_for(error_rate: float) -> str:
    """Return the health status name for an error rate."""
    if error_rate < HEALTHY_BELOW:
        return "healthy"
    if error_rate < DEGRADED_BELOW:
        return "degraded"
    return "failing"


@dataclass(frozen=True, slots=True)
class Sample:
    """What one instance did in one tick."""

    requests: int
    errors: int
    latency_ms: float


def sample_for(config: InstanceConfig, *, demand: int) -> Sample:
    """Return the tick sample an instance with `config` produces under `demand` connections."""
    fraction = error_fraction(config, demand=demand)
    # Half-up rather than Python's half-to-even, so a 0.5 fraction reads as failing, not degraded.
    errors = math.floor(REQUESTS_PER_TICK * fraction + 0.5)
    return Sample(
        requests=REQUESTS_PER_TICK,
        errors=errors,
        latency_ms=latency_p99_ms(config, demand=demand),
    )


@dataclass(frozen=True, slots=True)
class Health:
    """An instance's health over its current window."""

    status: str
    error_rate: float
    latency_p99_ms: float
    requests: int

    @classmethod
    def of(cls, samples: list[Sample]) -> Health:
        """Return the health over `samples`; an empty window is healthy with no requests."""
        requests = sum(sample.requests for sample in samples)
        if requests == 0:
            return cls(status=status_for(0.0), error_rate=0.0, latency_p99_ms=0.0, requests=0)
        error_rate = sum(sample.errors for sample in samples) / requests
        return cls(
            status=status_for(error_rate),
            error_rate=error_rate,
            latency_p99_ms=_p99(samples, requests=requests),
            requests=requests,
        )

    def view(self) -> HealthView:
        """Return the health as its JSON shape."""
        return {
            "status": self.status,
            "error_rate": self.error_rate,
            "latency_p99_ms": self.latency_p99_ms,
            "requests": self.requests,
        }


def _p99(samples: list[Sample], *, requests: int) -> float:
    rank = math.ceil(0.99 * requests)
    seen = 0
    for sample in sorted(samples, key=lambda s: s.latency_ms):
        seen += sample.requests
        if seen >= rank:
            return sample.latency_ms
    raise AssertionError("rank exceeds the number of requests")  # unreachable: rank <= requests


class Instance:
    """One simulated instance: its config, a ring buffer of recent samples and its counters."""

    def __init__(self, *, service: str, instance_id: str, demand: int, window_ticks: int) -> None:
        self.service = service
        self.instance_id = instance_id
        self.demand = demand
        self.config = InstanceConfig()
        self.writes = 0
        self.ok_total = 0
        self.error_total = 0
        self._samples: deque[Sample] = deque(maxlen=window_ticks)

    @property
    def key(self) -> str:
        """Return the `service/instance` name used in write counts."""
        return f"{self.service}/{self.instance_id}"

    def tick(self) -> Sample:
        """Serve one tick of traffic under the current config and record it."""
        sample = sample_for(self.config, demand=self.demand)
        self._samples.append(sample)
        self.ok_total += sample.requests - sample.errors
        self.error_total += sample.errors
        return sample

    def health(self) -> Health:
        """Return the health over the current window."""
        return Health.of(list(self._samples))

    def reset(self) -> None:
        """Return to the default config with no history, counters or writes."""
        self.config = InstanceConfig()
        self.writes = 0
        self.ok_total = 0
        self.error_total = 0
        self._samples.clear()

    def view(self) -> InstanceView:
        """Return the instance as its JSON shape."""
        return {
            "service": self.service,
            "instance": self.instance_id,
            "config": self.config.view(),
            "health": self.health().view(),
            "writes": self.writes,
        }
