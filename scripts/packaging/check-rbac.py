#!/usr/bin/env python3
"""Checks every request hearth-operator made (kube-test-server's request log, /_test/requests) against the RBAC
the chart grants its ServiceAccount, as Kubernetes' RBAC authorizer would decide it: a request that would be
forbidden on a real cluster fails the check. The verbs of rules no request used are listed for the reader to
judge (some paths need what a run may not cause: deleting the agent, a repeated Event, the Grafana Secret).

usage: check-rbac.py RENDERED_YAML REQUEST_LOG_JSON [--user-agent hearth-operator/] [--service-account NS/NAME]
                     [--no-unused | --fail-unused]
A server-side apply that created its object (201) is authorized as `create` of that name as well as `patch`."""
import argparse
import json
import sys

import yaml


def parse(path):
    """(group, resource, namespace, name) of an API path; resource includes a subresource ("x/status")."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[:1] == ["api"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"]:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], rest[1] if len(rest) > 1 else ""
    if len(rest) > 2:
        resource += "/" + rest[2]
    return group, resource, namespace, name


def allows(rule, group, resource, verb, name):
    def has(values, value):
        return "*" in values or value in values
    return (has(rule.get("apiGroups", []), group) and has(rule.get("resources", []), resource)
            and has(rule.get("verbs", []), verb)
            and (not rule.get("resourceNames") or name in rule["resourceNames"]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("rendered")
    parser.add_argument("log")
    parser.add_argument("--user-agent", default="hearth-operator/")
    parser.add_argument("--service-account", default="hearth-system/hearth-operator")
    parser.add_argument("--no-unused", action="store_true", help="do not list unused verbs")
    parser.add_argument("--fail-unused", action="store_true",
                        help="fail when a granted verb was never used (nothing granted that is never needed)")
    args = parser.parse_args()
    sa_namespace, sa_name = args.service_account.split("/")

    objects = [o for o in yaml.safe_load_all(open(args.rendered)) if o]
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o.get("rules", [])
             for o in objects if o["kind"] in ("Role", "ClusterRole")}
    grants = []  # (namespace the rules apply in, or None for every namespace; rule; where it comes from)
    for binding in (o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa_name
                   and s.get("namespace") == sa_namespace for s in binding.get("subjects", [])):
            continue
        scope = binding["metadata"].get("namespace")  # None for a ClusterRoleBinding
        ref = binding["roleRef"]
        key = (ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"])
        for index, rule in enumerate(roles.get(key, [])):
            grants.append((scope, rule, f"{ref['kind']} {ref['name']} rule {index + 1}"))
    granted = {(where, verb) for _, rule, where in grants for verb in rule.get("verbs", [])}

    used, denied, checked = set(), [], 0
    for record in json.load(open(args.log)):
        if not record["userAgent"].startswith(args.user_agent) or record["verb"] == "discovery":
            continue
        target = parse(record["path"])
        if target is None:
            continue
        group, resource, namespace, name = target
        verbs = [record["verb"]]
        if record["verb"] == "patch" and record["code"] == 201:  # only an apply patch creates
            verbs.append("create")
        for verb in verbs:
            checked += 1
            matching = [(where, verb) for scope, rule, where in grants
                        if (scope is None or scope == namespace) and allows(rule, group, resource, verb, name)]
            used.update(matching)
            if not matching:
                denied.append(f"{verb} {group or 'core'}/{resource} {namespace or '-'}/{name or '*'}"
                              f"  ({record['method']} {record['path']} -> {record['code']})")

    for line in sorted(set(denied)):
        print("FORBIDDEN", line)
    unused = {}
    for where, verb in sorted(granted - used):
        unused.setdefault(where, []).append(verb)
    for where, verbs in ({} if args.no_unused else unused).items():
        print(f"not used in this run: {where}: {', '.join(verbs)}")
    print(f"{checked} authorizations of {args.user_agent} requests checked, {len(set(denied))} forbidden")
    return 1 if denied or (args.fail_unused and unused) else 0


if __name__ == "__main__":
    sys.exit(main())
