"""The frameworks' own test suites, run without and with byok-tasks active (``make conformance``).

Each suite comes from its source release on PyPI, pinned below to the versions the
project tests against. It runs three times: bare (the baseline), with byok-tasks
installed, and with every test inside a BYOK context (see ``byok_active.py``). A test
that passes bare and fails only with byok-tasks fails the run, unless it is one of the
differences listed, with its reason, in ``expected-differences.txt``. Such a test is run
again, bare once and active up to three times, before it counts: it must fail each time
active and pass bare, so that a suite's own flaky test cannot fail ours. A suite without
``full_baseline`` (sentry-python's LLM folders, the longest) runs bare only the tests
that failed active.

RQ's tests flush Redis databases on localhost:6379: they run in a network namespace of
their own (``unshare --net``) beside a Redis server started there, and never see the
Redis other tests use.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = ROOT / "build" / "conformance"
MODES = ("installed", "context")
RUN_LIMIT = 1500  # seconds for one run of one suite, all of them running at once
LINGER = 10  # seconds a suite may take to exit once its report is written


@dataclass(frozen=True)
class Suite:
    name: str
    release: str  # pip requirement of the source release
    folder: str  # its folder once unpacked
    paths: tuple[str, ...]
    frameworks: str  # what byok_active.py activates
    own_network: bool = False
    # False: no full bare run; only the tests that fail with byok-tasks active run bare,
    # once both active runs are done (the only bare outcomes the comparison reads).
    full_baseline: bool = True


SUITES = (
    Suite("celery", "celery==5.7.0", "celery-5.7.0", ("t/unit/tasks", "t/unit/app", "t/unit/worker"), "celery"),
    Suite("rq", "rq==3.0.0", "rq-3.0.0", ("tests",), "rq", own_network=True),
    # sentry-python's tests of its integrations, each folder in a process of its own as in
    # sentry-python's own CI: in one session, one folder's integration state (set up once
    # per process, or auto-deactivated by another's) fails hundreds of another's tests.
    # Each in a namespace of its own: its Celery tests use a Redis on localhost:6379, and
    # its LLM tests must not reach the network (tiktoken's encodings then fail at once).
    # The LLM folders' bare runs are only of the tests that fail with byok-tasks active.
    *(
        Suite(
            f"sentry-{name}",
            "sentry-sdk==2.75.0",
            "sentry_sdk-2.75.0",
            (f"tests/integrations/{name}",),
            frameworks,
            own_network=True,
            full_baseline=name in ("celery", "rq"),
        )
        for name, frameworks in (
            ("celery", "celery,sentry"),
            ("rq", "rq,sentry"),
            ("openai", "sentry"),
            ("anthropic", "sentry"),
            ("langchain", "sentry"),
        )
    ),
)


def fetch(suite: Suite) -> Path:
    source = BUILD / "src" / suite.folder
    if source.is_dir():
        return source
    downloads = BUILD / "downloads"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps", "-d", downloads,
         suite.release],
        check=True,
    )  # fmt: skip
    [archive] = downloads.glob(f"{suite.folder}.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(BUILD / "src", filter="data")
    return source


@functools.cache
def compile_sources(source: Path) -> None:
    """Byte-compile a suite's unpacked source once, before its runs start.

    Where PYTHONDONTWRITEBYTECODE is set (it is here), nothing imported from the unpacked
    tree is ever cached, and sentry-sdk tries to import each of its sixty-odd integrations
    on every client a test makes: most fail at import (their library is not installed),
    and so are compiled again each time, which took more than half of the LLM tests' time.
    """
    # A file that does not compile (a fixture of the suite's) just stays uncached.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(source)], check=False,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def start(suite: Suite, source: Path, mode: str, report: Path, only: list[str] | None = None, reruns: int = 0) -> Run:
    env = {**os.environ, "BYOK_CONFORMANCE": mode, "BYOK_CONFORMANCE_FRAMEWORKS": suite.frameworks}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    # The suite's own configuration, less its coverage and reporting options.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--timeout", "120",
               "--continue-on-collection-errors", f"--junitxml={report}",
               "-W", "ignore::DeprecationWarning", "-p", "forked_compat"]  # fmt: skip
    if mode != "bare":
        command += ["-p", "byok_active"]
    if reruns:
        command += ["--reruns", str(reruns)]  # pytest-rerunfailures: passed if any try passes
    command += only if only is not None else list(suite.paths)
    if suite.own_network:
        command = ["unshare", "--net", sys.executable, str(HERE / "own_redis.py"), *command]
    report.unlink(missing_ok=True)
    proc = subprocess.Popen(
        command, cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    return Run(f"{suite.name} {mode}", proc, report, time.monotonic())


@dataclass
class Run:
    name: str
    proc: subprocess.Popen[bytes]
    report: Path
    started: float

    def outcomes(self) -> dict[str, str]:
        # Some suites leave forked children behind (RQ's worker tests do), and pytest then
        # waits for them after its report is written: the report is what counts.
        deadline = self.started + RUN_LIMIT
        while self.proc.poll() is None:
            written = self.report.exists() and time.time() - self.report.stat().st_mtime > LINGER
            if written or time.monotonic() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                break
            time.sleep(1)
        if not self.report.exists():
            raise SystemExit(f"conformance: {self.name} wrote no report (it crashed, or ran over {RUN_LIMIT} s)")
        print(f"  {self.name}: {time.monotonic() - self.started:.0f} s", flush=True)
        return outcomes(self.report)


def outcomes(report: Path) -> dict[str, str]:
    """Each test's node id to passed, failed or skipped, from a JUnit XML report."""
    results: dict[str, str] = {}
    for case in ElementTree.parse(report).iter("testcase"):
        path = case.get("classname", "").replace(".", "/")
        name = f"{path}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            results[name] = "failed"
        elif case.find("skipped") is not None:
            results[name] = "skipped"
        else:
            results[name] = "passed"
    return results


def node_ids(report: Path, names: set[str], source: Path) -> list[str]:
    """pytest node ids of the ``names`` in ``report``, to run them again."""
    ids = []
    for case in ElementTree.parse(report).iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        if f"{classname.replace('.', '/')}::{name}" not in names:
            continue
        parts = classname.split(".")
        # The module is the longest prefix that is a file; the rest are classes.
        for cut in range(len(parts), 0, -1):
            module = "/".join(parts[:cut]) + ".py"
            if (source / module).is_file():
                ids.append("::".join([module, *parts[cut:], name]))
                break
    return ids


def expected_differences() -> list[tuple[str, str, str]]:
    entries = []
    for line in (HERE / "expected-differences.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            suite, mode, pattern = line.split(maxsplit=2)
            entries.append((suite, mode, pattern))
    return entries


def is_expected(suite: str, mode: str, test: str, expected: list[tuple[str, str, str]]) -> bool:
    return any(s == suite and m in (mode, "*") and fnmatch.fnmatchcase(test, pattern) for s, m, pattern in expected)


def start_all(suite: Suite) -> dict[str, Run]:
    source = fetch(suite)
    compile_sources(source)
    reports = BUILD / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    modes = ("bare", *MODES) if suite.full_baseline else MODES
    return {mode: start(suite, source, mode, reports / f"{suite.name}-{mode}.xml") for mode in modes}


def baseline(suite: Suite, runs: dict[str, Run], source: Path, reports: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The bare outcomes to compare with, and the active runs' outcomes (by mode)."""
    if suite.full_baseline:
        bare = runs["bare"].outcomes()
        return bare, {mode: runs[mode].outcomes() for mode in MODES}
    actives = {mode: runs[mode].outcomes() for mode in MODES}
    ids: list[str] = []
    for mode in MODES:
        failing = {t for t, o in actives[mode].items() if o == "failed"}
        ids += [i for i in node_ids(runs[mode].report, failing, source) if i not in ids]
    if not ids:
        return {}, actives
    return start(suite, source, "bare", reports / f"{suite.name}-bare.xml", ids).outcomes(), actives


def check(suite: Suite, runs: dict[str, Run], expected: list[tuple[str, str, str]]) -> bool:
    print(f"{suite.name} ({suite.release}): {' '.join(suite.paths)}", flush=True)
    source, reports = BUILD / "src" / suite.folder, BUILD / "reports"
    bare, actives = baseline(suite, runs, source, reports)
    # Without a full bare run, a test that failed active and did not run bare (a collection
    # error, an id that cannot be run again) counts as passing bare: it fails the run.
    unrun = None if suite.full_baseline else "passed"
    baseline_failures = {test for test, outcome in bare.items() if outcome == "failed"}
    # A module that cannot even be imported bare tests nothing: the suite is not set up here.
    uncollected = sorted(test for test in baseline_failures if test.startswith("::"))
    for test in uncollected:
        print(f"    CANNOT COLLECT, EVEN BARE: {test.removeprefix('::')}")
    ok = not uncollected
    for mode in MODES:
        active = actives[mode]
        only_active = {t for t, o in active.items() if o == "failed" and bare.get(t, unrun) == "passed"}
        missing = {t for t in bare if bare[t] == "passed" and t not in active}
        listed = {t for t in only_active if is_expected(suite.name, mode, t, expected)}
        suspects = only_active - listed
        flaky: set[str] = set()
        ids = node_ids(runs[mode].report, suspects, source)
        if ids:  # what cannot be run again by its id (a collection error) stays a failure
            # A timing test of the suite's own that fails now and then, bare too (RQ's
            # test_reap_workers does on a loaded machine), must fail three times running.
            again = start(suite, source, mode, reports / f"{suite.name}-{mode}-again.xml", ids, reruns=2)
            again_bare = start(suite, source, "bare", reports / f"{suite.name}-{mode}-bare-again.xml", ids)
            rerun, rerun_bare = again.outcomes(), again_bare.outcomes()
            # Not reproduced: it passed when run again with byok-tasks, or failed bare too.
            flaky = {t for t in suspects if rerun.get(t) == "passed" or rerun_bare.get(t) == "failed"}
        failures = sorted(suspects - flaky)
        print(
            f"  {suite.name} {mode}: {len(active)} tests, {len(baseline_failures)} failing bare"
            f"{'' if suite.full_baseline else f' (of the {len(bare)} failing active, run bare)'}, "
            f"{len(only_active)} failing only with byok-tasks ({len(listed)} listed as expected, "
            f"{len(flaky)} not reproduced when run again), {len(missing)} missing",
            flush=True,
        )
        for test in failures:
            print(f"    FAILS ONLY WITH BYOK-TASKS: {test}")
        for test in sorted(missing):
            print(f"    MISSING WITH BYOK-TASKS (collection error?): {test}")
        ok = ok and not failures and not missing
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", choices=[s.name for s in SUITES] + [[]], help="default: all")
    args = parser.parse_args()
    if shutil.which("unshare") is None:
        sys.exit("conformance: RQ's suite needs unshare (util-linux) for a network namespace of its own")
    expected = expected_differences()
    chosen = [s for s in SUITES if not args.suites or s.name in args.suites]
    # Every run of every suite at once: they mostly wait (on workers, sockets, sleeps), and
    # each RQ run has a network namespace and a Redis of its own.
    started = {suite.name: start_all(suite) for suite in chosen}
    results = {suite.name: check(suite, started[suite.name], expected) for suite in chosen}
    failed = [name for name, ok in results.items() if not ok]
    if failed:
        sys.exit(f"conformance: byok-tasks changes what {', '.join(failed)} test(s) expect")
    print("conformance: every suite passes with byok-tasks active, but for the listed differences")


if __name__ == "__main__":
    main()
