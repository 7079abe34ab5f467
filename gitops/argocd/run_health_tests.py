#!/usr/bin/env python3
"""Runs every Argo CD health check under resource_customizations/ against its health_test.yaml with real Lua
interpreters (Argo CD's own layout: GROUP/KIND/health.lua, health_test.yaml, testdata/). The YAML fixtures
become Lua table constructors; health_harness.lua runs the check on them.

usage: run_health_tests.py [--lua lua5.4 --lua lua5.1] [--object FILE --expect STATUS]
  --object FILE --expect STATUS: instead, check one live object (YAML, e.g. kubectl get -o yaml)."""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CUSTOMIZATIONS = os.path.join(HERE, "resource_customizations")


def lua_literal(value):
    """A Lua constructor for a decoded YAML value; lists become 1-based sequences as in Argo CD."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.:/,()'{}"
        return '"' + "".join(chr(b) if b in safe else "\\%03d" % b for b in value.encode()) + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join("[%s] = %s" % (lua_literal(str(k)), lua_literal(v)) for k, v in value.items()) + "}"
    # Timestamps YAML decodes (unquoted) are strings in Kubernetes JSON.
    return lua_literal(str(value))


def health(lua, script, resource):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as chunk:
        chunk.write("return " + lua_literal(resource) + "\n")
    try:
        result = subprocess.run([lua, os.path.join(HERE, "health_harness.lua"), script, chunk.name],
                                capture_output=True, text=True)
    finally:
        os.unlink(chunk.name)
    if result.returncode != 0:
        return None, result.stderr.strip()
    status, message = result.stdout.split("\n", 1)
    return status, message.rstrip("\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lua", action="append", help="interpreters (default: lua5.4)")
    parser.add_argument("--object")
    parser.add_argument("--expect")
    args = parser.parse_args()
    interpreters = args.lua or ["lua5.4"]
    failures = 0

    if args.object:
        resource = yaml.safe_load(open(args.object))
        group, kind = resource["apiVersion"].split("/")[0], resource["kind"]
        script = os.path.join(CUSTOMIZATIONS, group, kind, "health.lua")
        for lua in interpreters:
            status, message = health(lua, script, resource)
            ok = status == args.expect
            failures += not ok
            print(f"{'ok' if ok else 'FAIL'}  {lua}  {kind} {resource['metadata']['name']}: {status} ({message})"
                  + ("" if ok else f", expected {args.expect}"))
        return 1 if failures else 0

    tests = sorted(glob.glob(os.path.join(CUSTOMIZATIONS, "*", "*", "health_test.yaml")))
    if not tests:
        sys.exit("no health_test.yaml found")
    for test_file in tests:
        folder = os.path.dirname(test_file)
        script = os.path.join(folder, "health.lua")
        for case in yaml.safe_load(open(test_file))["tests"]:
            resource = yaml.safe_load(open(os.path.join(folder, case["inputPath"])))
            want = case["healthStatus"]
            for lua in interpreters:
                status, message = health(lua, script, resource)
                ok = status == want["status"] and message == want.get("message", message)
                failures += not ok
                print(f"{'ok' if ok else 'FAIL'}  {lua}  {os.path.relpath(folder, CUSTOMIZATIONS)}  "
                      f"{case['inputPath']}: {status} ({message})"
                      + ("" if ok else f", expected {want['status']} ({want.get('message')})"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
