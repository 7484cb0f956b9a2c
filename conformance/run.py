"""The frameworks' own test suites, run without and with byok-tasks active (``make conformance``).

Each suite comes from its source release on PyPI, pinned below to the versions the
project tests against. It runs twice with byok-tasks active: installed, and with every
test inside a BYOK context (see ``byok_active.py``); then bare, the tests that failed
active (the only bare outcomes the comparison reads: a full bare run would cost CI a
third of this target's time, to learn the outcomes of tests that pass either way). A
test that passes bare and fails only with byok-tasks fails the run, unless it is one of
the differences listed, with its reason, in ``expected-differences.txt``. Such a test is
run again, bare once and active up to three times, before it counts: it must fail each
time active and pass bare, so that a suite's own flaky test cannot fail ours. Each of
these steps runs every suite's runs at once: they mostly wait.

RQ's tests flush Redis databases on localhost:6379: they run in a network namespace of
their own (``unshare --net``) beside a Redis server started there, and never see the
Redis other tests use. They also signal processes by number (one signals the process
group of pid 19999, taken not to exist): they run in a PID namespace of their own too,
where the other runs' processes have no number.
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
    apart: bool = False  # in network and PID namespaces of its own, beside a Redis of its own


SUITES = (
    Suite("celery", "celery==5.7.0", "celery-5.7.0", ("t/unit/tasks", "t/unit/app", "t/unit/worker"), "celery"),
    Suite("rq", "rq==3.0.0", "rq-3.0.0", ("tests",), "rq", apart=True),
    # sentry-python's tests of its integrations, each folder in a process of its own as in
    # sentry-python's own CI: in one session, one folder's integration state (set up once
    # per process, or auto-deactivated by another's) fails hundreds of another's tests.
    # Each apart: its Celery tests use a Redis on localhost:6379, and its LLM tests must
    # not reach the network (tiktoken's encodings then fail at once).
    *(
        Suite(
            f"sentry-{name}",
            "sentry-sdk==2.75.0",
            "sentry_sdk-2.75.0",
            (f"tests/integrations/{name}",),
            frameworks,
            apart=True,
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


def source_of(suite: Suite) -> Path:
    return BUILD / "src" / suite.folder


def fetch(suite: Suite) -> Path:
    source = source_of(suite)
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
    if suite.apart:
        # RQ's test_handle_shutdown_request_no_horse sends SIGRTMIN (whose default is to
        # terminate) to the process group of pid 19999: in a CI run that pid was in another
        # suite's run, which died with exit status -34 and no report. In a PID namespace
        # of its own, a run reaches its own processes only, and own_redis.py is its init:
        # when it exits, whatever the suite left behind is killed with it.
        command = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", sys.executable,
                   str(HERE / "own_redis.py"), *command]  # fmt: skip
    report.unlink(missing_ok=True)
    # The run's own output is kept beside its report: when no report comes, it says why.
    with report.with_suffix(".log").open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
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
            output = self.report.with_suffix(".log").read_text(errors="replace").splitlines()[-40:]
            raise SystemExit(
                f"conformance: {self.name} wrote no report (it crashed, or ran over {RUN_LIMIT} s),"
                f" exit status {self.proc.returncode}; the end of its output:\n" + "\n".join(output)
            )
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


def start_active(suite: Suite) -> dict[str, Run]:
    source = fetch(suite)
    compile_sources(source)
    reports = BUILD / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    return {mode: start(suite, source, mode, reports / f"{suite.name}-{mode}.xml") for mode in MODES}


def start_bare(suite: Suite, runs: dict[str, Run], actives: dict[str, dict[str, str]]) -> Run | None:
    """The bare run of the tests that failed in either active run; None when none did."""
    ids: list[str] = []
    for mode in MODES:
        failing = {t for t, o in actives[mode].items() if o == "failed"}
        ids += [i for i in node_ids(runs[mode].report, failing, source_of(suite)) if i not in ids]
    if not ids:
        return None
    return start(suite, source_of(suite), "bare", BUILD / "reports" / f"{suite.name}-bare.xml", ids)


@dataclass
class Comparison:
    """One suite in one active mode against its bare outcomes."""

    suite: Suite
    mode: str
    active: dict[str, str]
    bare: dict[str, str]
    only_active: set[str]
    listed: set[str]
    again: tuple[Run, Run] | None = None  # the suspects run again: active (three tries), and bare

    @property
    def suspects(self) -> set[str]:
        return self.only_active - self.listed


def compare(suite: Suite, mode: str, run: Run, active: dict[str, str], bare: dict[str, str],
            expected: list[tuple[str, str, str]]) -> Comparison:  # fmt: skip
    # A test that failed active and did not run bare (a collection error, an id that
    # cannot be run again) counts as passing bare: it fails the run.
    only_active = {t for t, o in active.items() if o == "failed" and bare.get(t, "passed") == "passed"}
    listed = {t for t in only_active if is_expected(suite.name, mode, t, expected)}
    comparison = Comparison(suite, mode, active, bare, only_active, listed)
    ids = node_ids(run.report, comparison.suspects, source_of(suite))
    if ids:  # what cannot be run again by its id (a collection error) stays a failure
        # A timing test of the suite's own that fails now and then, bare too (RQ's
        # test_reap_workers does on a loaded machine), must fail three times running.
        reports = BUILD / "reports"
        comparison.again = (
            start(suite, source_of(suite), mode, reports / f"{suite.name}-{mode}-again.xml", ids, reruns=2),
            start(suite, source_of(suite), "bare", reports / f"{suite.name}-{mode}-bare-again.xml", ids),
        )
    return comparison


def verdict(comparison: Comparison) -> bool:
    suite, mode = comparison.suite, comparison.mode
    flaky: set[str] = set()
    if comparison.again is not None:
        rerun, rerun_bare = (run.outcomes() for run in comparison.again)
        # Not reproduced: it passed when run again with byok-tasks, or failed bare too.
        flaky = {t for t in comparison.suspects if rerun.get(t) == "passed" or rerun_bare.get(t) == "failed"}
    failures = sorted(comparison.suspects - flaky)
    baseline_failures = sum(1 for outcome in comparison.bare.values() if outcome == "failed")
    # A module that cannot even be imported bare tests nothing: the suite is not set up here.
    uncollected = sorted(t for t, o in comparison.bare.items() if o == "failed" and t.startswith("::"))
    print(
        f"  {suite.name} {mode}: {len(comparison.active)} tests, {baseline_failures} failing bare "
        f"(of the {len(comparison.bare)} failing active, run bare), {len(comparison.only_active)} failing only "
        f"with byok-tasks ({len(comparison.listed)} listed as expected, {len(flaky)} not reproduced when run "
        "again)",
        flush=True,
    )
    for test in uncollected:
        print(f"    CANNOT COLLECT, EVEN BARE: {test.removeprefix('::')}")
    for test in failures:
        print(f"    FAILS ONLY WITH BYOK-TASKS: {test}")
    return not failures and not uncollected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", choices=[s.name for s in SUITES] + [[]], help="default: all")
    args = parser.parse_args()
    if shutil.which("unshare") is None:
        sys.exit("conformance: RQ's suite needs unshare (util-linux) for a network namespace of its own")
    expected = expected_differences()
    chosen = [s for s in SUITES if not args.suites or s.name in args.suites]
    # Each step, every suite at once: the runs mostly wait (on workers, sockets, sleeps),
    # and each RQ run has a network namespace and a Redis of its own.
    runs = {suite.name: start_active(suite) for suite in chosen}
    actives = {suite.name: {mode: runs[suite.name][mode].outcomes() for mode in MODES} for suite in chosen}
    bare_runs = {suite.name: start_bare(suite, runs[suite.name], actives[suite.name]) for suite in chosen}
    bares = {name: run.outcomes() if run is not None else {} for name, run in bare_runs.items()}
    comparisons = [
        compare(suite, mode, runs[suite.name][mode], actives[suite.name][mode], bares[suite.name], expected)
        for suite in chosen
        for mode in MODES
    ]
    failed: list[str] = []
    for comparison in comparisons:
        if comparison.mode == MODES[0]:
            print(f"{comparison.suite.name} ({comparison.suite.release}): {' '.join(comparison.suite.paths)}")
        if not verdict(comparison) and comparison.suite.name not in failed:
            failed.append(comparison.suite.name)
    if failed:
        sys.exit(f"conformance: byok-tasks changes what {', '.join(failed)} test(s) expect")
    print("conformance: every suite passes with byok-tasks active, but for the listed differences")


if __name__ == "__main__":
    main()
