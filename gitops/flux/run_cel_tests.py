#!/usr/bin/env python3
"""Evaluates healthcheckexprs.yaml (Flux CEL health checks for ProfilingTarget) with cel-python on the Argo CD
fixtures: Healthy and Suspended must be current, Degraded failed, Progressing in progress, and never two at once.
An expression that cannot be evaluated (no status yet: `status` is undefined) counts as false, as Flux keeps
waiting on it."""
import glob
import os
import sys

import celpy
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "argocd", "resource_customizations", "profiling.hearth.dev", "ProfilingTarget")
EXPECTED = {"Healthy": "current", "Suspended": "current", "Degraded": "failed", "Progressing": "inProgress"}


def main():
    (check,) = yaml.safe_load(open(os.path.join(HERE, "healthcheckexprs.yaml")))
    environment = celpy.Environment()
    programs = {name: environment.program(environment.compile(check[name]))
                for name in ("inProgress", "failed", "current")}
    failures = 0
    for case in yaml.safe_load(open(os.path.join(FIXTURES, "health_test.yaml")))["tests"]:
        resource = yaml.safe_load(open(os.path.join(FIXTURES, case["inputPath"])))
        if resource["metadata"].get("deletionTimestamp"):
            continue  # kstatus reports Terminating before any expression runs
        activation = {key: celpy.json_to_cel(value) for key, value in resource.items()}
        held = []
        for name, program in programs.items():
            try:
                result = program.evaluate(activation)
            except celpy.CELEvalError:
                result = False
            if isinstance(result, celpy.CELEvalError):
                result = False
            if result:
                held.append(name)
        want = EXPECTED[case["healthStatus"]["status"]]
        ok = held == [want] or (want == "inProgress" and not held)
        failures += not ok
        print(f"{'ok' if ok else 'FAIL'}  {case['inputPath']}: {', '.join(held) or 'none (waits)'}"
              + ("" if ok else f", expected {want}"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
