"""Sentry: every event that carries an LLM failure is tagged, grouped, levelled and scrubbed.

Add :class:`ByokIntegration` to ``sentry_sdk.init(integrations=[...])``. It captures
nothing that another integration already captures: it enriches whatever event carries
the failure. It captures a task's final LLM failure itself only when Sentry's Celery or
RQ integration is disabled, and then holds back the framework's own log line about that
failure, which sentry-sdk's logging integration would make a second event of. Where a
failure's fate is not yet known, the event is held back:

- sentry-sdk's LLM integrations (OpenAI, Anthropic, LangChain, ...) capture a failure
  at the call, before anyone knows whether the task will retry it or the application
  will handle it. Those events are dropped; the failure is reported where its fate is
  known: when it leaves the task or the request (Celery's, RQ's or the web framework's
  integration), or when the application calls :func:`byok_tasks.report_llm_error`.
- Storm control holds back repeated BYOK failures (:class:`byok_tasks.storm.StormControl`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._extras import needs_extra

with needs_extra(__name__, "sentry-sdk", "sentry"):
    import sentry_sdk
    from sentry_sdk.integrations import Integration
    from sentry_sdk.integrations.dedupe import DedupeIntegration
    from sentry_sdk.integrations.logging import ignore_logger
    from sentry_sdk.scope import add_global_event_processor
    from sentry_sdk.utils import event_from_exception, safe_repr

# sentry-sdk 3 changed what this module relies on (Dedupe's last-seen exception,
# event_from_exception's arguments): with it, this module would import, then lose events
# without a word. The extra asks for these versions; an install without it gets this error.
if not (2, 20) <= tuple(int(part) for part in sentry_sdk.VERSION.split(".")[:2]) < (3, 0):
    raise ImportError(
        f"{__name__} works with sentry-sdk 2.20 to 2.x, and {sentry_sdk.VERSION} is installed: "
        'pip install "sentry-sdk>=2.20,<3"'
    )

from . import report
from .failure import LLMFailure
from .redaction import REDACTED, redact
from .running import running_task
from .storm import StormControl

if TYPE_CHECKING:
    from sentry_sdk._types import Event, Hint, LogLevelStr

__all__ = ["ByokIntegration", "default_fingerprint", "redact_event"]

# The mechanism types of sentry-sdk's integrations that capture at the LLM call itself.
_CALL_LEVEL_MECHANISMS = frozenset(
    {
        "anthropic",
        "cohere",
        "google_genai",
        "huggingface_hub",
        "langchain",
        "langgraph",
        "litellm",
        "mistral",
        "openai",
        "openai_agents",
        "pydantic_ai",
    }
)
# Top-level logger names of the task frameworks whose log line about a failure repeats it.
_TASK_FRAMEWORKS = frozenset({"celery", "rq", "dramatiq"})
# Those that log a failed run before it is known whether it runs again.
_LOGS_BEFORE_ITS_FATE = frozenset({"dramatiq"})
# Containers deeper than this are cut, as Sentry's own serializer would cut them.
_MAX_DEPTH = 12


def default_fingerprint(failure: LLMFailure) -> list[str]:
    """Group by what triage needs: 500 users with invalid keys are one issue, a platform outage another."""
    return ["llm", failure.source, failure.provider, failure.reason, failure.feature or "unknown"]


class ByokIntegration(Integration):
    """Tags (``llm.source``, ``llm.provider``, ``llm.reason``, ...), fingerprint, level and user for
    every event carrying an LLM failure; key material scrubbed by value from every event.

    ``level`` maps a failure to ``"warning"`` or ``"error"`` (default: warning for what the
    user must fix on their own key). ``fingerprint`` returns the grouping (None keeps
    Sentry's own). Storm control sends at most ``storm_budget`` events per
    ``storm_window`` seconds for each (user, provider, reason) in each process; platform
    failures too if ``storm_platform``.

    Exactly one event per failure, at its fate: the events sentry-sdk's LLM integrations
    (OpenAI, Anthropic, LangChain, ...) capture at the call itself, before anyone knows
    whether a retry succeeds or the application handles the error, are dropped. So an LLM
    error the application catches and does not re-raise reaches Sentry only through
    :func:`byok_tasks.report_llm_error`. With ``call_events=True`` those call-level events
    are kept instead, tagged like the others plus ``llm.captured_at:call``, marked handled
    and grouped apart from the failure's own event (outside storm control, which counts
    failures, not captures).
    """

    identifier = "byok"

    def __init__(
        self,
        *,
        level: Callable[[LLMFailure], LogLevelStr] = report.default_level,
        fingerprint: Callable[[LLMFailure], list[str]] | None = default_fingerprint,
        storm_budget: int = 1,
        storm_window: float = 600.0,
        storm_platform: bool = False,
        call_events: bool = False,
    ) -> None:
        self.level = level
        self.call_events = call_events
        self.fingerprint = fingerprint
        self.storm = StormControl(storm_budget, storm_window, platform=storm_platform)

    @staticmethod
    def setup_once() -> None:
        add_global_event_processor(_process_event)
        # The structured failure records are for log pipelines: the failure's event is sent on
        # its own, and the logging integration must not make a second one of the record.
        ignore_logger(report.logger.name)
        report.set_event_sink(_SentrySink())
        _list_installed_modules()


def _list_installed_modules() -> None:
    """Have sentry-sdk list the installed distributions now, in the process that forks the workers.

    Its modules integration lists them (every ``METADATA`` file of the environment) on the
    first event of each process, and keeps the list. A forking worker (Celery prefork, RQ)
    would pay that in every child, on the failure path of the task whose event comes first:
    200 ms on an idle machine, over a second on a loaded one. Made here, at
    ``sentry_sdk.init``, the list is made once and inherited by every child.
    """
    try:
        from sentry_sdk.utils import _get_installed_modules
    except ImportError:  # not in this sentry-sdk: nothing to warm
        return
    try:
        _get_installed_modules()
    except Exception:  # a broken distribution: Sentry meets it on its first event, as it would have
        return


def _integration() -> ByokIntegration | None:
    integration = sentry_sdk.get_client().get_integration(ByokIntegration)
    return integration if isinstance(integration, ByokIntegration) else None


def _process_event(event: Event, hint: Hint) -> Event | None:
    integration = _integration()
    if integration is None:
        return event
    _scrub_after_serialization(sentry_sdk.get_client().options)
    task = running_task()
    record = (hint or {}).get("log_record")
    if task is not None and task.failure_reported and _from_a_framework(record):
        # We sent this task's failure; the framework's log line about it is the same failure.
        return None
    exc_info = (hint or {}).get("exc_info")
    exc = exc_info[1] if exc_info else None
    if exc is None or (failure := report.failure_of(exc)) is None:
        return event
    if task is not None and _from_a_framework(record, _LOGS_BEFORE_ITS_FATE):
        # Dramatiq logs each failed run before its Retries middleware decides whether the
        # message runs again; the failure's own event comes from its fate.
        return None
    mechanism = _mechanism(event)
    if report.already_reported(exc) and (mechanism.get("type"), mechanism.get("handled")) != ("byok", True):
        # Its event was sent when the application reported it; this is it raised again.
        return None
    if mechanism.get("type") in _CALL_LEVEL_MECHANISMS:
        if not integration.call_events:
            # Dedupe remembers the last exception it let through; forgetting it lets the same
            # exception through when it reaches the integration that reports its real fate.
            DedupeIntegration.reset_last_seen()
            return None
        _enrich(event, failure, 0, integration)
        _mark_call_level(event, mechanism)
        DedupeIntegration.reset_last_seen()  # the failure's own event is still to come
        return event
    suppressed = integration.storm.admit(failure)
    if suppressed is None:
        DedupeIntegration.reset_last_seen()
        report.event_held_back(failure)  # so that metrics can count what Sentry will not see
        return None
    _enrich(event, failure, suppressed, integration)
    return event


def _from_a_framework(record: Any, frameworks: frozenset[str] = _TASK_FRAMEWORKS) -> bool:
    # Only the task framework's own lines: what the application logs is its own news.
    name = getattr(record, "name", None)
    return isinstance(name, str) and name.partition(".")[0] in frameworks


def _mechanism(event: Event) -> dict[str, Any]:
    """How the event's exception was captured: its integration (``type``) and ``handled``."""
    try:
        mechanism = event["exception"]["values"][-1]["mechanism"]
    except (KeyError, IndexError, TypeError):
        return {}
    return mechanism if isinstance(mechanism, dict) else {}


def _enrich(event: Event, failure: LLMFailure, suppressed: int, integration: ByokIntegration) -> None:
    tags = event.setdefault("tags", {})
    tags.update(
        {
            "llm.source": failure.source,
            "llm.provider": failure.provider,
            "llm.reason": failure.reason,
            "llm.operation": failure.operation,
        }
    )
    for tag, value in (
        ("llm.status", failure.status),
        ("llm.model", failure.model),
        ("llm.feature", failure.feature),
        ("byok.uid", failure.uid),
    ):
        if value is not None:
            tags[tag] = str(value)
    if failure.source == "byok" and failure.uid is not None:
        event["user"] = {**(event.get("user") or {}), "id": failure.uid}
    record = failure.as_dict()
    if suppressed:
        record["suppressed"] = suppressed
        tags["llm.suppressed"] = str(suppressed)
    event.setdefault("contexts", {})["llm"] = record
    event["level"] = integration.level(failure)
    if integration.fingerprint is not None:
        event["fingerprint"] = integration.fingerprint(failure)


def _mark_call_level(event: Event, mechanism: dict[str, Any]) -> None:
    mechanism["handled"] = True
    event.setdefault("tags", {})["llm.captured_at"] = "call"
    if isinstance(event.get("fingerprint"), list):
        event["fingerprint"] = [*event["fingerprint"], "call"]


def redact_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with every string value that holds key material redacted, whatever its field.

    Sentry's own scrubber matches field names, not values: it lets ``key = "sk-…"`` in a
    stack frame and a key echoed in an exception message through. Keys are found by their
    shape, and the keys this process has handled by their value, whatever their shape
    (:func:`byok_tasks.redact`). Objects are checked by the repr Sentry would send for them.
    """
    redacted: dict[str, Any] = _redacted(event, 0)
    return redacted


def _redacted(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth > _MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        return {_redacted(key, depth): _redacted(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(item, depth + 1) for item in value]
    text = safe_repr(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def _scrub_after_serialization(options: dict[str, Any]) -> None:
    # Scrubbing belongs after Sentry has serialized the event (objects in stack frames
    # become their reprs) and after the processors on the scope (Celery's adds task
    # arguments when send_default_pii is on). The only hook after both is before_send,
    # which belongs to the application: we chain to it rather than replace it, checked
    # per event because every sentry_sdk.init makes a new client.
    for option in ("before_send", "before_send_transaction"):
        current = options.get(option)
        if not getattr(current, "_byok_scrubs", False):
            options[option] = _scrubbing(current)


def _scrubbing(inner: Callable[[Any, Any], Any] | None) -> Callable[[Any, Any], Any]:
    def before_send(event: Any, hint: Any) -> Any:
        if inner is not None:
            event = inner(event, hint)
        return redact_event(event) if isinstance(event, dict) else event

    before_send._byok_scrubs = True  # type: ignore[attr-defined]
    return before_send


class _SentrySink:
    def describe(self) -> str:
        integration = _integration()
        if integration is None:
            return "ByokIntegration not in sentry_sdk.init(): failures are logged only"
        storm = integration.storm
        scope = "all failures" if storm.platform else "BYOK failures"
        return f"Sentry events; storm budget for {scope}: {storm.budget} per {storm.window:g} s per user and reason"

    def capture_handled(self, exc: BaseException) -> None:
        self._capture(exc, handled=True)

    def flush(self) -> None:
        if _integration() is not None:
            sentry_sdk.flush()

    def capture_task_failure(self, exc: BaseException, framework: str) -> bool:
        # Celery's and RQ's own integrations capture a task's final failure themselves.
        return sentry_sdk.get_client().get_integration(framework) is None and self._capture(exc, handled=False)

    @staticmethod
    def _capture(exc: BaseException, *, handled: bool) -> bool:
        client = sentry_sdk.get_client()
        if client.get_integration(ByokIntegration) is None:
            return False
        event, hint = event_from_exception(
            exc, client_options=client.options, mechanism={"type": "byok", "handled": handled}
        )
        sentry_sdk.capture_event(event, hint=hint)
        return True
