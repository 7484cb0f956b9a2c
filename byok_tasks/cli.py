"""The ``byok-tasks`` command: ``triage FILE`` for a team's own events, ``demo`` from a checkout."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = (
    "Tell a user's own LLM key failures from the platform's. "
    "'byok-tasks triage FILE' prints the on-call view of Sentry events saved as JSON; "
    "'byok-tasks demo' runs the demo from a checkout of byok-tasks."
)


def main(argv: list[str] | None = None) -> None:
    # Not __doc__: argparse prints the description as it is, and reST markup reads as noise there.
    parser = argparse.ArgumentParser(prog="byok-tasks", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    triage = commands.add_parser("triage", help="print the on-call view of Sentry events saved as JSON")
    triage.add_argument("file", help="events saved by the demo's collector, or exported from Sentry")
    commands.add_parser("demo", help="run the demo (from a checkout of byok-tasks)")
    args = parser.parse_args(argv)

    if args.command == "triage":
        from .triage import load_events, render
        from .triage import triage as build_view

        try:
            events = load_events(args.file)
        except (OSError, ValueError) as exc:
            sys.exit(f"byok-tasks triage: {exc}")
        try:
            render(build_view(events))
        except ModuleNotFoundError as exc:
            sys.exit(f"byok-tasks triage needs {exc.name}: pip install 'byok-tasks[cli]'")
    else:
        try:
            from demo.run import main as run_demo
        except ImportError:
            sys.exit(
                "byok-tasks demo runs from a checkout of byok-tasks, with the demo extra installed: "
                "clone the repository and run `make demo`."
            )
        run_demo()


if __name__ == "__main__":
    main()
