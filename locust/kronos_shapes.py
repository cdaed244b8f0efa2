"""Load shapes for the four scenarios of the seed's performance guide.

The locustfile binds exactly one of these classes, chosen by the SCENARIO environment variable,
because Locust uses the first LoadTestShape subclass it finds in the locustfile's namespace.

Each shape is a pure function of the elapsed time (``plan``) so that it can be tested without a
runner; ``tick`` only feeds it Locust's clock. The duration comes from KRONOS_LOAD_DURATION
(seconds; locust/run.sh sets it from its DURATION argument), else the scenario's default, and
every phase scales with it.
"""

import math
import os

from locust import LoadTestShape


def duration_from_env(default):
    """Returns KRONOS_LOAD_DURATION in seconds, or default when it is unset or empty."""
    raw = os.environ.get("KRONOS_LOAD_DURATION", "").strip()
    if not raw:
        return float(default)
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"KRONOS_LOAD_DURATION must be a positive number of seconds, got {raw!r}")
    return value


class _Scenario(LoadTestShape):
    """Common part: a duration and a plan(t) -> (users, spawn_rate) or None when finished."""

    default_duration = 300.0

    def __init__(self, duration=None):
        super().__init__()
        self.duration = float(duration) if duration is not None else duration_from_env(self.default_duration)

    def plan(self, t):
        raise NotImplementedError

    def tick(self):
        t = self.get_run_time()
        if t >= self.duration:
            return None
        return self.plan(t)


class SteadyShape(_Scenario):
    """Steady state (baseline): 10 users, spawn rate 2/s, 5 minutes."""

    default_duration = 300.0

    def plan(self, t):
        return (10, 2)


class StressShape(_Scenario):
    """Stress (find the limits): 10 users rising to 100 in steps of 10, one step per tenth of the
    run, spawn rate 5/s, 10 minutes."""

    default_duration = 600.0

    def plan(self, t):
        step = int(t // (self.duration / 10))
        return (min(100, 10 + 10 * step), 5)


class SpikeShape(_Scenario):
    """Spike (resilience): 10 users for 40 % of the run, a rapid jump to 100 for 20 %, back to 10
    for the last 40 %, 5 minutes."""

    default_duration = 300.0

    def plan(self, t):
        if self.duration * 0.4 <= t < self.duration * 0.6:
            return (100, 50)
        return (10, 50)


class EnduranceShape(_Scenario):
    """Endurance (stability, memory leaks): 20 users, spawn rate 5/s, 30 minutes."""

    default_duration = 1800.0

    def plan(self, t):
        return (20, 5)


SCENARIOS = {
    "steady": SteadyShape,
    "stress": StressShape,
    "spike": SpikeShape,
    "endurance": EnduranceShape,
}


def select(name):
    """Returns the shape class of a scenario name (case-insensitive)."""
    try:
        return SCENARIOS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown SCENARIO {name!r}; want one of {', '.join(SCENARIOS)}") from None
