"""Lets pytest-forked 1.7.5 run under pytest 9.2, for every run of every suite (``-p forked_compat``).

pytest 9.2 keeps a test report's node id as a structured ``_id`` that ``marshal`` cannot
send, and pytest-forked sends each forked test's reports back to its parent with
``marshal``: every ``@pytest.mark.forked`` test then fails as "EXITED with status 3", bare
or not, and tests nothing (sentry-python's Celery tests fork). The report goes as pytest's
own serialization sends it, the node id as its string.
"""

from __future__ import annotations

from typing import Any

try:
    import pytest_forked
except ImportError:  # a suite without pytest-forked
    pytest_forked = None

if pytest_forked is not None:
    _serialize_report = pytest_forked.serialize_report

    def serialize_report(rep: Any) -> dict[str, Any]:
        report: dict[str, Any] = _serialize_report(rep)
        if "_id" in report:
            report["nodeid"] = str(report.pop("_id"))
        return report

    pytest_forked.serialize_report = serialize_report
