"""Prints the figures of one schemathesis run from its JSON report: the
operations tested, the test cases generated, and the failures and errors by
kind with the operations they were seen on. Used by bench/api_schema.sh;
reads only the report and the log it is given."""

import json
import sys


def main() -> int:
    name, report_path, log_path = sys.argv[1:4]
    try:
        with open(report_path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{name}: no JSON report ({e}); the end of the log:")
        with open(log_path, encoding="utf-8", errors="replace") as f:
            print(f.read()[-4000:])
        return 1
    ops = report["operations"]
    cases = report["test_cases"]
    phases = ", ".join(f"{k} {v['status']}" for k, v in report["phases"].items())
    print(f"{name}: schemathesis {report['schemathesis_version']}, seed {report['seed']}, "
          f"{report['running_time']:.0f} s")
    print(f"  operations  {ops['tested']} tested of {ops['selected']} selected "
          f"({ops['total']} in the document)")
    print(f"  test cases  {cases['generated']} generated, {cases['with_failures']} with failures")
    print(f"  phases      {phases}")
    failures = report.get("failures") or []
    errors = report.get("errors") or []
    if not failures and not errors:
        print("  failures    none")
    for f in failures:
        print(f"  failure     {f['code']} {f['title']}: {f['count']}")
        for op in f.get("operations") or []:
            label = op if isinstance(op, str) else op.get("label") or op.get("operation") or op
            print(f"                {label}")
    for e in errors:
        print(f"  error       {e['title']}: {e['count']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
