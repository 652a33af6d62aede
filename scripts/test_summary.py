"""Prints the verdict of a pytest run from its JUnit XML, as the last lines of `make test`.

Ray and Serve write to stderr from their own threads while the interpreter exits, after
pytest's summary; a log that keeps only its tail would show that noise and not which tests
failed. `make test` runs this after pytest has exited, so the failures and the totals come last.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

MESSAGE_LINES = 6
SLOWEST = 12


def summary(report: Path) -> list[str]:
    root = ET.parse(report).getroot()  # noqa: S314 - pytest wrote it a moment ago
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    lines: list[str] = []
    cases: list[tuple[float, str]] = []
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    elapsed = 0.0
    for suite in suites:
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        elapsed += float(suite.get("time", "0"))
        for case in suite.iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            cases.append((float(case.get("time", "0")), name))
            for kind in ("failure", "error"):
                for problem in case.findall(kind):
                    lines.append(f"{kind.upper()} {name}")
                    text = (problem.get("message") or problem.text or "").strip().splitlines()
                    lines.extend(f"    {line[:200]}" for line in text[:MESSAGE_LINES])
    lines.append(f"slowest {SLOWEST}:")
    for seconds, name in sorted(cases, reverse=True)[:SLOWEST]:
        lines.append(f"    {seconds:7.1f}s {name}")
    passed = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
    lines.append(
        f"pytest: {passed} passed, {totals['failures']} failed, {totals['errors']} errors, "
        f"{totals['skipped']} skipped in {elapsed:.0f} s"
    )
    return lines


def main(argv: list[str]) -> int:
    report = Path(argv[1] if len(argv) > 1 else ".pytest-report.xml")
    if not report.is_file():
        print(f"no pytest report at {report}: pytest did not get as far as writing it")
        return 1
    print("\n".join(["", "== the test run, once more, after Ray's exit ==", *summary(report)]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
