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


def load_events(path: str | Path) -> list[dict[str, Any]]:
    """Events from a JSON array, a ``{"events": [...]}`` object, or JSON lines."""
    text = Path(path).read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        data = data.get("events", data.get("data", [data]))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array of Sentry events")
    return [event for event in data if isinstance(event, dict)]


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
        console.print("[green]No LLM failures in these events.[/]")
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
