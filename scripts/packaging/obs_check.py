"""Checks the Grafana dashboard and the metric names used by the observability assets.

usage:
  python3 obs_check.py dashboard DASHBOARD_JSON PROMQL_RULES_OUT
      structure checks; writes every panel query (Grafana variables substituted) as a
      recording rule to PROMQL_RULES_OUT so that `promtool check rules` parses them all
  python3 obs_check.py names CATALOG_RS SCRAPE_FILE FILE...
      CATALOG_RS is src/telemetry/metrics.rs, where every metric name is a constant. The
      live scrape exports only catalogued names; every gleaner_* metric named in FILEs is
      catalogued or one of the announced pending names (else an alert or panel would stay
      silent forever); catalogued metrics missing from the dashboard (a .json FILE) are
      reported
"""

import json
import re
import sys

# Every metric the alerts and dashboard use is now exported; new provisional names go here.
PENDING: set = set()
NAME = re.compile(r"\bgleaner_[a-z0-9_]+")


def base(name):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def dashboard(path, rules_out):
    d = json.load(open(path))
    bad = []
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    if len(ids) != len(set(ids)):
        bad.append("panel ids are not unique")
    if not d.get("uid") or not d.get("title"):
        bad.append("dashboard needs a uid and a title")
    variables = {v["name"] for v in d["templating"]["list"]}
    for need in ("datasource", "job", "instance"):
        if need not in variables:
            bad.append(f"missing template variable ${need}")
    exprs = []
    for p in panels:
        g = p["gridPos"]
        if g["x"] < 0 or g["w"] <= 0 or g["x"] + g["w"] > 24:
            bad.append(f"panel {p['title']!r}: gridPos outside the 24-column grid")
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            bad.append(f"panel {p['title']!r} does not use the $datasource variable")
        if not p.get("targets"):
            bad.append(f"panel {p['title']!r} has no query")
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
    subst = {"$__rate_interval": "5m", "$__interval": "1m", "$job": ".*", "$instance": ".*"}
    with open(rules_out, "w") as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, (title, e) in enumerate(exprs):
            for k, v in subst.items():
                e = e.replace(k, v)
            if "$" in e:
                bad.append(f"panel {title!r}: unknown variable in {e}")
            f.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(e)}\n")
    print(f"dashboard {d['title']!r}: {len(panels)} panels, {len(exprs)} queries")
    for b in bad:
        print("  FAIL", b)
    return not bad


def names(catalog_rs, scrape, files):
    catalog = set(re.findall(r'pub const [A-Z0-9_]+: &str =\s*"(gleaner_[a-z0-9_]+)"', open(catalog_rs).read()))
    scraped = {base(n) for n in NAME.findall(open(scrape).read())}
    ok = bool(catalog)
    print(f"catalogued in {catalog_rs}: {', '.join(sorted(catalog))}")
    print(f"in the live scrape: {len(scraped)} of them")
    if scraped - catalog:
        ok = False
        print(f"  FAIL scraped but not catalogued: {', '.join(sorted(scraped - catalog))}")
    for path in files:
        used = {base(n) for n in NAME.findall(open(path).read())}
        unknown = sorted(used - catalog - PENDING)
        pending = sorted(used & PENDING)
        print(f"{path}: {len(used)} gleaner metrics; pending: {', '.join(pending) or 'none'}")
        if unknown:
            ok = False
            print(f"  FAIL neither catalogued nor announced as pending: {', '.join(unknown)}")
        if path.endswith(".json") and catalog - used:
            # A warning, not a failure: a new metric should not break others' CI runs.
            print(f"  WARN catalogued but not on the dashboard: {', '.join(sorted(catalog - used))}")
    return ok


if __name__ == "__main__":
    if sys.argv[1] == "dashboard":
        sys.exit(0 if dashboard(sys.argv[2], sys.argv[3]) else 1)
    if sys.argv[1] == "names":
        sys.exit(0 if names(sys.argv[2], sys.argv[3], sys.argv[4:]) else 1)
    sys.exit(__doc__)
