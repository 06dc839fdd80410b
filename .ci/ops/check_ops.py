#!/usr/bin/env python3
"""Checks of the shipped operations files that promtool and amtool do not
make: used by .ci/ops/check.sh. Standard library only.

  check_ops.py coverage ALERTS.yml RECORDING.yml TEST.yml...
      every alert has a firing and a non-firing case in the tests; every
      recording rule's output is read by a promql_expr_test
  check_ops.py dashboard DASHBOARD.json OUT.yml
      the dashboard's structure (schema, variables, data sources, ids), and
      every target's expr, template variables substituted, written as
      recording rules to OUT.yml for `promtool check rules`
  check_ops.py dashboard-one DASHBOARD.json DIR
      the same, one rules file per expr (DIR/NNN.yml) with its panel's
      title in a comment: to name the expression that does not parse
  check_ops.py names --allow LIST --rules R.yml [--rules R2.yml] --dashboard D.json
                     [--source ROOT] SCRAPE...
      every metric the rules and the dashboard name appears in one of the
      scrapes (or in the allowlist, with its reason); every label value
      they match on (outcome="failed", status="5xx", ...) is in a scrape or,
      for events the run cannot cause, a string literal of ROOT's crates;
      the health-check names the rules match on are real checks

The YAML read here is the shipped files' own simple layout (rules with
`- alert:`/`- record:` and `expr:` inline or as a `|` block; tests with
`alertname:` and `exp_alerts:`); a layout change shows up as a failure to
find any rule, never as a silent pass.
"""

import json
import re
import sys

# Grafana's variables, as check.sh's queries see them.
SUBSTITUTE = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "job": "kailash-gateway",
    "instance": ".*",
    "route": ".*",
}
# Series Prometheus makes itself, not the gateway.
NOT_EXPORTED = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "inf", "nan", "atan2",
}
BUILTIN_CHECKS = {"state", "pubsub", "audit", "memory_usage", "disk_usage", "workflow_failure_rate",
                  "active_sessions"}

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}", file=sys.stderr)


def finish(what):
    if failures:
        print(f"check_ops: {what}: {len(failures)} failure(s)", file=sys.stderr)
        sys.exit(1)


# ---- rules files ----------------------------------------------------------------
def rules(path):
    """[(kind, name, expr)] of a rules file, kind 'alert' or 'record'."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out = []
    i = 0
    current = None
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*- (alert|record):\s*(\S+)\s*$", line)
        if m:
            current = (m.group(1), m.group(2))
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if m and current:
            indent, rest = len(m.group(1)), m.group(2)
            if rest in ("|", ">", "|-", ">-"):
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    body.append(lines[i].strip())
                    i += 1
                expr = " ".join(b for b in body if b)
                out.append((current[0], current[1], expr))
                current = None
                continue
            out.append((current[0], current[1], rest.strip().strip("'\"")))
            current = None
        i += 1
    if not out:
        fail(f"{path}: no rules found (has the file's layout changed?)")
    return out


# ---- coverage -----------------------------------------------------------------------
def coverage(alerts_path, recording_path, tests):
    alerts = {name for kind, name, _ in rules(alerts_path) if kind == "alert"}
    records = {name for kind, name, _ in rules(recording_path) if kind == "record"}
    firing, quiet, read = set(), set(), set()
    for path in tests:
        lines = open(path, encoding="utf-8").read().split("\n")
        name = None
        for i, line in enumerate(lines):
            m = re.match(r"\s*alertname:\s*(\S+)\s*$", line)
            if m:
                name = m.group(1)
            m = re.match(r"\s*exp_alerts:\s*(\[\])?\s*$", line)
            if m and name:
                (quiet if m.group(1) else firing).add(name)
                name = None
            m = re.match(r"\s*- expr:\s*(.*)$", line)
            if m:
                read.update(re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]+", m.group(1)))
    for a in sorted(alerts):
        if a not in firing:
            fail(f"alert {a}: no test case where it fires (exp_alerts with an alert)")
        if a not in quiet:
            fail(f"alert {a}: no test case where it does not fire (exp_alerts: [])")
    for t in sorted((firing | quiet) - alerts):
        fail(f"the tests name alert {t}, which {alerts_path} does not define")
    for r in sorted(records - read):
        fail(f"recording rule {r}: no promql_expr_test reads it")
    finish("coverage")
    print(f"check_ops: coverage: {len(alerts)} alerts each with a firing and a non-firing case; "
          f"{len(records)} recorded series each tested")


# ---- dashboard ---------------------------------------------------------------------------
def substitute(expr):
    def var(m):
        name = m.group(1) or m.group(2)
        if name not in SUBSTITUTE:
            raise KeyError(name)
        return SUBSTITUTE[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", var, expr)


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def dashboard_exprs(path):
    """[(label, expr with variables substituted)] after the structure checks."""
    d = json.load(open(path, encoding="utf-8"))
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        fail(f"{path}: schemaVersion {d.get('schemaVersion')!r} (want 36 or later)")
    if not d.get("uid") or not d.get("title"):
        fail(f"{path}: no uid or title")
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        fail(f"{path}: no `datasource` variable of type datasource over prometheus")
    for name in ("job", "instance"):
        v = variables.get(name)
        if not v or v.get("type") != "query" or v.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"{path}: no `{name}` query variable on ${{datasource}}")
    for name in set(variables) - {"datasource"}:
        if name not in SUBSTITUTE:
            fail(f"{path}: variable ${name} has no substitute in check_ops.py SUBSTITUTE")
    ids = set()
    exprs = []
    for p in all_panels(d.get("panels", [])):
        title = p.get("title", "?")
        if p.get("id") in ids:
            fail(f"panel {title!r}: duplicate id {p.get('id')}")
        ids.add(p.get("id"))
        if "gridPos" not in p:
            fail(f"panel {title!r}: no gridPos")
        if p.get("type") == "row":
            continue
        targets = p.get("targets") or []
        if not targets:
            fail(f"panel {title!r}: no targets")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"panel {title!r}: data source is not ${{datasource}}")
        for t in targets:
            label = f"panel {title!r} target {t.get('refId')}"
            if t.get("datasource", {}).get("uid") != "${datasource}":
                fail(f"{label}: data source is not ${{datasource}}")
            expr = t.get("expr", "")
            if not expr.strip():
                fail(f"{label}: empty expr")
                continue
            try:
                exprs.append((label, expr, substitute(expr)))
            except KeyError as e:
                fail(f"{label}: unknown template variable ${e.args[0]} in {expr}")
    for v in variables.values():
        q = v.get("query")
        if v.get("type") == "query":
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q or "")
            if not m:
                fail(f"variable ${v.get('name')}: query {q!r} is not label_values(selector, label)")
                continue
            try:
                exprs.append((f"variable ${v['name']}", m.group(1), substitute(m.group(1))))
            except KeyError as e:
                fail(f"variable ${v['name']}: unknown template variable ${e.args[0]}")
    if not exprs:
        fail(f"{path}: no queries found")
    return exprs


def write_rules(path, exprs):
    with open(path, "w", encoding="utf-8") as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, (label, _, expr) in enumerate(exprs):
            f.write(f"      # {label}\n      - record: dashboard:query:{i:03d}\n        expr: {json.dumps(expr)}\n")


def dashboard(path, out):
    exprs = dashboard_exprs(path)
    finish("dashboard")
    write_rules(out, exprs)
    print(f"check_ops: dashboard: {len(exprs)} queries written to {out}")


def dashboard_one(path, directory):
    for i, item in enumerate(dashboard_exprs(path)):
        write_rules(f"{directory}/{i:03d}.yml", [item])
        print(f"{directory}/{i:03d}.yml\t{item[0]}: {item[1]}")


# ---- metric names -----------------------------------------------------------------------------
def metric_names(expr):
    """The metric names an expression selects (no parser: the shipped
    expressions' subset of PromQL)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)  # label lists
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def scrape(path):
    """(sample names, {family: type}, {check label values}, {(name, label,
    value)}) of an exposition."""
    samples, types, checks, pairs = set(), {}, set(), set()
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            types[m.group(1)] = m.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s", line)
        if m:
            samples.add(m.group(1))
            for lm in re.finditer(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""):
                pairs.add((m.group(1), lm.group(1), lm.group(2)))
            if m.group(1) == "kailash_health_check_up":
                c = re.search(r'check="([^"]*)"', m.group(2) or "")
                if c:
                    checks.add(c.group(1))
    return samples, types, checks, pairs


def family(name):
    for s in HISTOGRAM_SUFFIXES:
        if name.endswith(s):
            return name[: -len(s)]
    return name


def matchers(expr):
    """[(metric, label, op, value)] of the expression's label matchers
    whose value is a literal or an alternation of literals (one entry per
    alternative); `job`, `instance`, `le` and `route` are the deployment's,
    not the gateway's."""
    out = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
        for lm in re.finditer(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', m.group(2)):
            label, op, value = lm.groups()
            if label in ("job", "instance", "le", "route"):
                continue
            values = value.split("|") if "~" in op else [value]
            if all(re.fullmatch(r"\w+", v) for v in values):
                out.extend((m.group(1), label, op, v) for v in values)
    return out


def source_literals(root):
    """Every short string literal in the crates' sources."""
    import pathlib

    found = set()
    for path in pathlib.Path(root).glob("crates/*/src/**/*.rs"):
        found.update(re.findall(r'"(\w{1,40})"', path.read_text(encoding="utf-8", errors="replace")))
    return found


def names(args):
    import argparse

    ap = argparse.ArgumentParser(prog="check_ops.py names")
    ap.add_argument("--allow", required=True)
    ap.add_argument("--rules", action="append", default=[])
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--source", help="the repository root: label values not in the scrapes must be literals in its crates")
    ap.add_argument("scrapes", nargs="+")
    opts = ap.parse_args(args)
    allow_path, rule_files, dash_path, scrapes = opts.allow, opts.rules, opts.dashboard, opts.scrapes
    allow = {}
    for line in open(allow_path, encoding="utf-8"):
        body, _, reason = line.partition("#")
        if body.strip():
            if not reason.strip():
                fail(f"{allow_path}: {body.strip()} has no reason")
            allow[body.strip()] = reason.strip()

    used = {}  # name -> where
    used_matchers = {}  # (metric, label, op, value) -> where
    recorded = set()
    check_values = set()
    for path in rule_files:
        for kind, rname, expr in rules(path):
            if kind == "record":
                recorded.add(rname)
            for n in metric_names(expr):
                used.setdefault(n, f"{path}: {kind} {rname}")
            for mt in matchers(expr):
                used_matchers.setdefault(mt, f"{path}: {kind} {rname}")
            if "kailash_health_check_" in expr:
                for v in re.findall(r'check=~?"([^"]*)"', expr):
                    check_values.update(x for x in v.split("|") if re.fullmatch(r"\w+", x))
    for label, raw, expr in dashboard_exprs(dash_path):
        for n in metric_names(expr):
            used.setdefault(n, f"{dash_path}: {label}")
        for mt in matchers(expr):
            used_matchers.setdefault(mt, f"{dash_path}: {label}")

    samples, checks, pairs = set(), set(), set()
    for s in scrapes:
        a, _, c, p = scrape(s)
        samples |= a
        checks |= c
        pairs |= p
    if not samples:
        fail("the scrapes hold no samples")
    for n in sorted(used):
        if n in NOT_EXPORTED or n in recorded or ":" in n:
            continue
        # Sample names: a histogram's _bucket/_sum/_count are there as such.
        if n in samples:
            continue
        if n in allow or family(n) in allow:
            continue
        fail(f"metric {n} (used by {used[n]}) is not in the gateway's scrape")
    for n in sorted(allow):
        if n in samples or any(n + s in samples for s in HISTOGRAM_SUFFIXES):
            print(f"check_ops: note: allowlisted {n} is in the scrape now; remove it from {allow_path}")
        if n not in {family(u) for u in used}:
            fail(f"{allow_path}: {n} is not used by the dashboard or the rules; remove it")
    # Label values: a typo (outcome="fail") would make a rule never fire.
    # Each value must be in a scrape, or (events the run cannot cause:
    # status="5xx", outcome="failed") a string literal of the crates.
    literals = source_literals(opts.source) if opts.source else set()
    from_source = []
    for (metric, label, op, value), where in sorted(used_matchers.items()):
        if metric in NOT_EXPORTED or metric in recorded or ":" in metric or label == "check":
            continue
        if (metric, label, value) in pairs:
            continue
        if value in literals:
            from_source.append(f'{metric}{{{label}="{value}"}}')
            continue
        fail(f'label value {metric}{{{label}{op}"{value}"}} (used by {where}) is neither in the scrape'
             + (" nor a string literal of the crates" if opts.source else " (no --source given)"))
    if from_source:
        print(f"check_ops: label values not in the scrape but in the crates' sources: {', '.join(from_source)}")
    for v in sorted(check_values & BUILTIN_CHECKS):
        if v not in checks:
            fail(f"health check {v!r} (matched by the rules) is not among the scrape's checks {sorted(checks)}")
    finish("names")
    checked = [n for n in used if n not in NOT_EXPORTED and n not in recorded and ":" not in n]
    print(f"check_ops: names: {len(checked)} metric names used, all in the scrape "
          f"except {len([n for n in checked if n not in samples])} allowlisted; "
          f"health checks {sorted(check_values & BUILTIN_CHECKS)} present")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "coverage" and len(args) >= 3:
        coverage(args[0], args[1], args[2:])
    elif cmd == "dashboard" and len(args) == 2:
        dashboard(*args)
    elif cmd == "dashboard-one" and len(args) == 2:
        dashboard_one(*args)
    elif cmd == "names":
        names(args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
