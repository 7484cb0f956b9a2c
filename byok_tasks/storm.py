"""Storm control: at most a budget of events per (uid, provider, reason) and window.

:class:`StormControl` keeps its windows in this process. When key health is configured
(:mod:`byok_tasks.health`), the budget is the fleet's instead: every process of every worker
counts in the same Redis, in one atomic round trip per event (a Lua script on INCR and
PEXPIRE), and the next event let through carries the exact count held back everywhere.
When that store does not answer within its bound (50 ms by default), the process falls
back to its own windows, says so once in the log, and goes back to the fleet's once the
store answers again. A task is never failed or slowed beyond that bound by it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .failure import LLMFailure

__all__ = ["FleetBudget", "StormControl", "set_fleet_budget"]

logger = logging.getLogger(__name__)

# KEYS: the window's count, the held-back count. ARGV: budget, window (ms), how long a
# held-back count waits for the next event (ms). Returns -1 to hold back, else the count.
_ADMIT = """
local sent = redis.call('INCR', KEYS[1])
if sent == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if sent > tonumber(ARGV[1]) then
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return -1
end
local held = redis.call('GET', KEYS[2])
if held then redis.call('DEL', KEYS[2]) end
return tonumber(held or '0')
"""

HELD_BACK = -1


class FleetBudget(Protocol):
    """The fleet-wide counter behind :class:`StormControl` (implemented by :mod:`byok_tasks.health`)."""

    def admit(self, key: tuple[str | None, ...], budget: int, window: float) -> int | None:
        """As :meth:`StormControl.admit`, for the whole fleet; raises :class:`StoreUnavailable` when it cannot tell."""


class StoreUnavailable(Exception):
    """The fleet's store did not answer within its bound: the caller falls back to its own process."""


_fleet: FleetBudget | None = None


def set_fleet_budget(budget: FleetBudget | None) -> None:
    """Share every :class:`StormControl`'s budget through ``budget`` (None: per process again)."""
    global _fleet
    _fleet = budget


def fleet_budget() -> FleetBudget | None:
    return _fleet


class RedisFleetBudget:
    """:class:`FleetBudget` on Redis: ``call`` runs a command through the key-health store's bounded client."""

    def __init__(self, call: Callable[..., Any], prefix: str, held_ttl: float) -> None:
        self._call, self._prefix, self._held_ttl_ms = call, prefix, int(held_ttl * 1000)

    def admit(self, key: tuple[str | None, ...], budget: int, window: float) -> int | None:
        name = self._prefix + "\0".join("" if part is None else part for part in key)
        keys = [name + "\0sent", name + "\0held"]
        args = [budget, max(1, int(window * 1000)), max(self._held_ttl_ms, int(window * 2000))]
        answer = self._call(lambda client: client.eval(_ADMIT, 2, *keys, *args))
        held = int(answer)
        return None if held == HELD_BACK else held


@dataclass
class _Window:
    started: float
    sent: int = 0
    suppressed: int = 0


class StormControl:
    """At most ``budget`` events per ``window`` seconds for each (uid, provider, reason).

    A user whose key was revoked can enqueue thousands of tasks a minute; each still gets
    its log record, but only the first events reach the tracker. The next event admitted
    for the same key carries how many were held back. Platform failures are ours to see
    in full, so they are only limited when ``platform`` is set.

    With key health configured (and ``fleet``, the default), the budget is shared by every
    process through its Redis; this process's own windows are the fallback when that store
    does not answer.
    """

    # Bounds the memory a flood of distinct users can take; the oldest windows go first.
    MAX_KEYS = 10_000

    def __init__(
        self,
        budget: int = 1,
        window: float = 600.0,
        *,
        platform: bool = False,
        fleet: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if budget < 1 or window <= 0:
            raise ValueError("storm control needs a budget of at least 1 event and a positive window")
        self.budget, self.window, self.platform, self.fleet, self._clock = budget, window, platform, fleet, clock
        self._windows: dict[tuple[str | None, ...], _Window] = {}
        self._lock = threading.Lock()

    @property
    def shared(self) -> bool:
        """Whether the budget is the fleet's (key health configured) rather than this process's."""
        return self.fleet and _fleet is not None

    def admit(self, failure: LLMFailure) -> int | None:
        """None to hold the event back; else the number held back since the last one sent for this key."""
        if failure.source == "platform" and not self.platform:
            return 0
        key = (failure.source, failure.uid, failure.provider, failure.reason)
        fleet = _fleet if self.fleet else None
        if fleet is not None:
            try:
                return fleet.admit(key, self.budget, self.window)
            except StoreUnavailable:
                pass  # said once in the log by the store; this process's windows decide meanwhile
        return self._admit_here(key)

    def _admit_here(self, key: tuple[str | None, ...]) -> int | None:
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window.started >= self.window:
                carried = self._windows.pop(key).suppressed if window is not None else 0
                # Re-inserted, so the dict stays ordered by window start: the oldest go first.
                window = self._windows[key] = _Window(now, suppressed=carried)
                while len(self._windows) > self.MAX_KEYS:
                    del self._windows[next(iter(self._windows))]
            if window.sent >= self.budget:
                window.suppressed += 1
                return None
            window.sent += 1
            suppressed, window.suppressed = window.suppressed, 0
            return suppressed
