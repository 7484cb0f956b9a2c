"""Score the corpus: ``python -m tests.classification.score [all|tuning|held_out]``.

Prints, per area, how many cases get the reason, the provider and the source right, and
every miss with what classify said. Stays on loopback like the tests do.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from typing import Any

from byok_tasks.testing.provider_server import ProviderServer
from tests.classification._harness import Case, held_out, run

AREAS = (
    "streams",
    "platforms",
    "endpoints",
    "quota",
    "context_length",
    "precedence",
    "unknown_providers",
    "gateways",
    "wrappers",
    "front",
)


def _loopback_only() -> None:
    real = socket.getaddrinfo

    def loopback(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not name.startswith(("127.", "localhost", "::1")):
            raise OSError(f"resolving {name!r}: the corpus stays on loopback")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = loopback


def main(mode: str) -> int:
    _loopback_only()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    totals = [0, 0, 0, 0, 0]
    misses: list[str] = []
    with ProviderServer() as server:
        for area in AREAS:
            cases: list[Case] = importlib.import_module(f"tests.classification.test_{area}").CASES
            chosen = [case for case in cases if mode == "all" or (mode == "held_out") == held_out(case.id)]
            right = [0, 0, 0, 0]
            for case in chosen:
                server.reset()
                failure = run(server, case)
                got = (failure.reason, failure.provider, failure.source) if failure else ("-", "-", "-")
                for index in range(3):
                    right[index] += got[index] == case.expect[index]
                right[3] += got == case.expect
                if got != case.expect:
                    misses.append(f"  {area}/{case.id}: expected {case.expect}, got {got}")
            scores = f"reason {right[0]:3}  provider {right[1]:3}  source {right[2]:3}  all {right[3]:3}"
            print(f"{area:<18} {len(chosen):3} cases  {scores}")
            totals = [totals[0] + len(chosen), *(t + r for t, r in zip(totals[1:], right, strict=True))]
    count = totals[0] or 1
    print(
        f"{'total':<18} {totals[0]:3} cases  reason {totals[1] / count:.0%}  provider {totals[2] / count:.0%}  "
        f"source {totals[3] / count:.0%}  all three {totals[4] / count:.0%}"
    )
    print("\n".join(misses))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "all"))
