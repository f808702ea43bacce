"""Start-up cost of `wlmap validate` (a pre-commit hook) against importing the libraries it needs.

Baseline, measured in the same run: `python -c "import yaml, jsonschema, jinja2, jmespath"`.
Target (issue 2): `wlmap validate mappings/sap.yaml` under 1.5x the baseline. Prints medians and the ratio.
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


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> None:
    python = sys.executable
    wlmap = str(Path(python).with_name("wlmap"))
    baseline_cmd = [python, "-c", "import yaml, jsonschema, jinja2, jmespath"]
    validate_cmd = [wlmap, "validate", "mappings/sap.yaml"]
    for command in (baseline_cmd, validate_cmd):  # warm the file cache
        timed(command)
    baseline, validate = [], []
    for _ in range(RUNS):  # interleaved, so drift affects both alike
        baseline.append(timed(baseline_cmd))
        validate.append(timed(validate_cmd))
    b, v = statistics.median(baseline), statistics.median(validate)
    print(f"startup  baseline (import yaml, jsonschema, jinja2, jmespath): {b * 1000:.1f} ms (median of {RUNS})")
    print(f"startup  wlmap validate mappings/sap.yaml:                      {v * 1000:.1f} ms")
    print(f"startup  ratio: {v / b:.2f}x (target < 1.5x)")


if __name__ == "__main__":
    main()
