"""Start-up cost of `wlmap validate` (a pre-commit hook) against importing the libraries that command uses.

Baseline, measured in the same run: `python -c "import typer, yaml, jsonschema, jinja2, jmespath, graphql"`
(the command line, the YAML reader, the mapping schema, templates, expressions and the GraphQL query checks).
Target (issue 9, which moved it from 1.5x without graphql-core): `wlmap validate mappings/sap.yaml` within 2x
of the baseline. Prints medians and the ratio; BENCH_RUNS sets the number of interleaved runs (default 25).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "25"))
LIBRARIES = "typer, yaml, jsonschema, jinja2, jmespath, graphql"


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> None:
    python = sys.executable
    wlmap = str(Path(python).with_name("wlmap"))
    baseline_cmd = [python, "-c", f"import {LIBRARIES}"]
    validate_cmd = [wlmap, "validate", "mappings/sap.yaml"]
    for command in (baseline_cmd, validate_cmd):  # warm the file cache
        timed(command)
    baseline, validate = [], []
    for _ in range(RUNS):  # interleaved, so drift affects both alike
        baseline.append(timed(baseline_cmd))
        validate.append(timed(validate_cmd))
    b, v = statistics.median(baseline), statistics.median(validate)
    print(f"startup  baseline (import {LIBRARIES}): {b * 1000:.1f} ms (median of {RUNS})")
    print(f"startup  wlmap validate mappings/sap.yaml: {v * 1000:.1f} ms")
    print(f"startup  ratio: {v / b:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
