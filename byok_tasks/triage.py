"""The on-call view of LLM failures: grouped by whose key, provider and reason.

Reads Sentry events (as the loopback collector saves them, or exported from Sentry as
JSON) and groups those that :class:`byok_tasks.sentry.ByokIntegration` tagged. The same
view ends the demo; ``byok-tasks triage FILE`` prints it for a team's own data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Group", "TriageView", "load_events", "render", "triage"]

# Page on-call for what is ours; tell users about what is theirs.
_ADVICE = {
    "platform": "ours: page on-call",
    "byok": "the user's own key: tell the user, do not page",
}


@dataclass
class Group:
    """Failures with the same source, provider and reason: one Sentry issue, one action."""

    source: str
    provider: str
    reason: str
    events: int = 0
    held_back: int = 0  # failures storm control did not send, as counted by later events
    users: set[str] = field(default_factory=set)
    features: set[str] = field(default_factory=set)

    @property
    def search(self) -> str:
        """The Sentry search that finds this group."""
        return f"llm.source:{self.source} llm.provider:{self.provider} llm.reason:{self.reason}"


@dataclass
class TriageView:
    groups: list[Group]
    other_events: int  # events that carry no LLM failure

    def by_source(self, source: str) -> list[Group]:
        return [group for group in self.groups if group.source == source]


# Keys every Sentry event has in one of the two shapes read here: an envelope's event (as
# the collector saves it) or an event of Sentry's API export.
_EVENT_KEYS = frozenset({"event_id", "eventID", "tags", "exception", "entries"})


def load_events(path: str | Path) -> list[dict[str, Any]]:
    """Events from a JSON array, a ``{"events": [...]}`` object, or JSON lines.

    ValueError, saying what was found instead, when the file holds something else: JSON
    that is no list of events would otherwise read as "no LLM failures", which is wrong.
    """
    text = Path(path).read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = _json_lines(path, text)
    if isinstance(data, dict):
        data = data.get("events", data.get("data", [data]))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array of Sentry events, found {_kind(data)}")
    events = [item for item in data if isinstance(item, dict) and not _EVENT_KEYS.isdisjoint(item)]
    if data and not events:
        kinds = sorted({_kind(item) for item in data})
        which = "its one item is not" if len(data) == 1 else f"none of its {len(data)} items is"
        raise ValueError(
            f"{path}: {which} a Sentry event (an object with event_id, tags or exception); "
            f"found {', '.join(kinds)}. Expected events saved by the demo's collector or exported from Sentry."
        )
    return events


def _json_lines(path: str | Path, text: str) -> list[Any]:
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: neither JSON nor JSON lines (line {number}: {exc.msg})") from None
    return items


def _kind(value: object) -> str:
    if isinstance(value, dict):
        keys = ", ".join(sorted(map(str, value))[:5])
        return f"an object with keys {keys}" if keys else "an empty object"
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _tags(event: dict[str, Any]) -> dict[str, str]:
    # The envelope format keeps tags as a dict; Sentry's API exports a list of pairs.
    raw = event.get("tags") or {}
    if isinstance(raw, dict):
        return {str(key): str(value) for key, value in raw.items()}
    pairs: Iterable[Any] = raw
    tags = {}
    for pair in pairs:
        if isinstance(pair, dict):
            tags[str(pair.get("key"))] = str(pair.get("value"))
        elif isinstance(pair, (list, tuple)) and len(pair) == 2:
            tags[str(pair[0])] = str(pair[1])
    return tags


def triage(events: Iterable[dict[str, Any]]) -> TriageView:
    groups: dict[tuple[str, str, str], Group] = {}
    other = 0
    for event in events:
        tags = _tags(event)
        if "llm.source" not in tags:
            other += 1
            continue
        key = (tags["llm.source"], tags.get("llm.provider", "unknown"), tags.get("llm.reason", "unknown"))
        group = groups.setdefault(key, Group(*key))
        group.events += 1
        group.held_back += int(tags.get("llm.suppressed", "0") or 0)
        if "byok.uid" in tags:
            group.users.add(tags["byok.uid"])
        if "llm.feature" in tags:
            group.features.add(tags["llm.feature"])
    ordered = sorted(groups.values(), key=lambda g: (g.source != "platform", -(g.events + g.held_back), g.provider))
    return TriageView(ordered, other)


def render(view: TriageView, *, failures: dict[tuple[str, str, str], int] | None = None, console: Any = None) -> None:
    """Print the view with rich. ``failures`` (from the structured logs) adds what storm control held back."""
    from rich.console import Console
    from rich.tree import Tree

    console = console or Console()
    if not view.groups:
        if view.other_events == 1:
            console.print(
                "[green]No LLM failures[/] in this one event: it does not carry the llm.source tag "
                "that byok_tasks.sentry.ByokIntegration adds (was it in the integrations of sentry_sdk.init?)."
            )
        elif view.other_events:
            console.print(
                f"[green]No LLM failures[/] in these {view.other_events} events: none carries the llm.source tag "
                "that byok_tasks.sentry.ByokIntegration adds (was it in the integrations of sentry_sdk.init?)."
            )
        else:
            console.print("[green]No LLM failures:[/] the file holds no events.")
        return
    tree = Tree("[bold]LLM failures[/], by whose key, provider and reason")
    for source in ("platform", "byok"):
        groups = view.by_source(source)
        if not groups:
            continue
        colour = "red" if source == "platform" else "yellow"
        branch = tree.add(f"[bold {colour}]llm.source:{source}[/]  [dim]{_ADVICE[source]}[/]")
        for group in groups:
            failed = (failures or {}).get((group.source, group.provider, group.reason))
            count = failed if failed is not None else group.events + group.held_back
            users = f"{len(group.users)} user{'s' * (len(group.users) != 1)}" if group.users else ""
            leaf = branch.add(
                f"[bold]{group.provider} {group.reason}[/]: {count} failure{'s' * (count != 1)}, "
                f"{group.events} event{'s' * (group.events != 1)}"
                + (f", {users}" if users else "")
                + (f" [dim]({', '.join(sorted(group.features))})[/]" if group.features else "")
            )
            leaf.add(f"[cyan]{group.search}[/]")
    console.print(tree)
    if view.other_events:
        console.print(f"[dim]{view.other_events} other event(s) carried no LLM failure.[/]")
    if failures is not None:
        total_failures = sum(failures.values())
        total_events = sum(group.events for group in view.groups)
        console.print(
            f"Storm control: [bold]{total_failures}[/] failures reached Sentry as [bold]{total_events}[/] events; "
            f"[bold]{total_failures - total_events}[/] were held back, each still in the structured log."
        )
