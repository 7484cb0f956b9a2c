"""What a newcomer reads in their first hour says what it means: help text, warnings, triage and the demo."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from byok_tasks.header import HeaderCodec, HeaderError
from demo.run import intro_panel, next_steps_panel


def triage(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "byok_tasks.cli", "triage", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "content",
    [[{"id": 1, "title": "not an event"}], {"results": []}, [1, 2], {"events": 3}],
    ids=["objects-that-are-not-events", "an-object-without-events", "numbers", "events-not-a-list"],
)
def test_triage_of_a_file_of_the_wrong_shape_says_what_is_wrong(tmp_path: Path, content: object) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps(content))
    done = triage(path)
    assert done.returncode != 0
    assert "No LLM failures" not in done.stdout
    assert f"byok-tasks triage: {path}:" in done.stderr
    assert "Sentry event" in done.stderr


def test_triage_of_events_without_byok_tags_says_why_none_is_an_llm_failure(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps([{"event_id": "a" * 32, "tags": {"environment": "prod"}}]))
    done = triage(path)
    assert done.returncode == 0, done.stderr
    assert "ByokIntegration" in done.stdout


def test_a_header_that_is_not_a_string_is_named_with_the_right_article() -> None:
    with pytest.raises(HeaderError) as refused:
        HeaderCodec.configure(None).decode(3)
    assert str(refused.value) == "header is an int, expected a string"


def test_help_shows_no_rest_markup() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "byok_tasks.cli", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "``" not in done.stdout
    assert "triage" in done.stdout


@pytest.mark.parametrize("width", [60, 80, 100, 120])
def test_the_demos_intro_breaks_lines_only_where_the_terminal_needs_or_a_sentence_ends(width: int) -> None:
    console = Console(width=width, record=True, color_system=None)
    console.print(intro_panel())
    lines = [line.strip("│ ") for line in console.export_text().splitlines()[1:-1]]
    room = width - 4  # the panel's borders and padding
    for line, following in itertools.pairwise(lines):
        if not re.search(r"[.!?]$", line):
            next_word = following.split()[0]
            assert len(line) + 1 + len(next_word) > room, f"a break mid-sentence after {line!r} at width {width}"


def test_the_demos_sentry_setup_rows_stay_in_their_column_on_an_80_column_terminal() -> None:
    console = Console(width=80, record=True, color_system=None)
    console.print(next_steps_panel(saved=False))
    rows = [line.strip("│").rstrip() for line in console.export_text().splitlines()[1:-1]]
    # A row rich had to wrap would continue at the panel's edge, under the labels.
    assert all(row.startswith(("  ", " Alert rules", " Searches")) for row in rows), rows
