#!/usr/bin/env bash
# Checks everything under dashboards/, deploy/ and the runbooks, without building the daemon:
#   - Prometheus rules: promtool check rules, promtool check config, promtool test rules;
#     alert conventions (severity, summary, description, runbook_url -> an existing runbook section);
#   - every dashboard query parsed and evaluated by a real Prometheus (empty TSDB, loopback);
#   - dashboards: generated files up to date, JSON structure, datasource variable, units,
#     descriptions, template variables, $__rate_interval in rates;
#   - Kubernetes manifests against the Kubernetes schemas (kubernetes-validate), the Prometheus
#     Operator resources structurally, the PrometheusRule's rules with promtool;
#   - the systemd unit with systemd-analyze verify (where available);
#   - the Dockerfile and docker-compose.yml statically (docker compose config if a docker engine
#     and the compose plugin exist).
# Exits non-zero if any check fails. Idempotent: writes only to a temporary directory.
#   usage: scripts/check-deploy.sh
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TMP="$(mktemp -d -t check-deploy.XXXXXX)"
PROM_PID=""
cleanup() {
    if [ -n "$PROM_PID" ]; then
        kill "$PROM_PID" 2>/dev/null
        wait "$PROM_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

FAILED=()
PASSED=0
SKIPPED=()

# step NAME COMMAND...: runs the command, prints its output indented, records the result.
step() {
    local name="$1"
    shift
    echo "==> $name"
    local out rc
    out="$("$@" 2>&1)"
    rc=$?
    if [ -n "$out" ]; then
        printf '%s\n' "$out" | sed 's/^/    /'
    fi
    if [ $rc -eq 0 ]; then
        echo "    ok"
        PASSED=$((PASSED + 1))
    elif [ $rc -eq 77 ]; then
        echo "    skipped"
        SKIPPED+=("$name")
    else
        echo "    FAILED (exit $rc)"
        FAILED+=("$name")
    fi
}

need() {
    command -v "$1" >/dev/null 2>&1
}

if ! need python3; then
    echo "python3 is required" >&2
    exit 1
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
    echo "==> installing PyYAML (python3 -m pip install -q pyyaml)"
    python3 -m pip install -q pyyaml >/dev/null 2>&1 || true
fi

# ------------------------------------------------------------------------------------------------
# Prometheus
# ------------------------------------------------------------------------------------------------
if need promtool; then
    step "promtool check rules deploy/prometheus/{rules,alerts}.yml" \
        promtool check rules deploy/prometheus/rules.yml deploy/prometheus/alerts.yml
    step "promtool check config deploy/prometheus/prometheus.yml" \
        promtool check config deploy/prometheus/prometheus.yml
    docker_prom() {
        mkdir -p "$TMP/compose-prom/rules"
        cp deploy/prometheus/rules.yml deploy/prometheus/alerts.yml "$TMP/compose-prom/rules/"
        sed "s#/etc/prometheus/rules/#$TMP/compose-prom/rules/#" deploy/docker/prometheus.yml >"$TMP/compose-prom/prometheus.yml"
        echo "(rule_files pointed from /etc/prometheus/rules/ to copies of deploy/prometheus/*.yml)"
        promtool check config "$TMP/compose-prom/prometheus.yml"
    }
    step "promtool check config deploy/docker/prometheus.yml (compose)" docker_prom
    step "promtool test rules deploy/prometheus/tests/*.yml" \
        promtool test rules deploy/prometheus/tests/*.yml
else
    echo "==> promtool not found (Debian: apt-get install -y prometheus)"
    FAILED+=("promtool missing")
fi

step "alert and recording rule conventions, runbook links, unit-test coverage" python3 - <<'PY'
import glob, re, sys, yaml

errors = []
rules = yaml.safe_load(open("deploy/prometheus/rules.yml"))
alerts = yaml.safe_load(open("deploy/prometheus/alerts.yml"))

# Runbook anchors: GitHub-style slugs of the headings of docs/runbooks.md.
def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")

try:
    runbook = open("docs/runbooks.md", encoding="utf-8").read()
except OSError:
    runbook = ""
    errors.append("docs/runbooks.md is missing")
anchors = {slug(m.group(2)) for m in re.finditer(r"^(#{1,6})\s+(.*)$", runbook, re.M)}

record_re = re.compile(r"^[a-z_]*:[a-z0-9_]+:[a-z0-9_]+$")
records = set()
for g in rules["groups"]:
    for r in g["rules"]:
        if "alert" in r:
            errors.append("rules.yml holds an alert (%s): alerts belong in alerts.yml" % r["alert"])
            continue
        name = r["record"]
        records.add(name)
        if not record_re.match(name):
            errors.append("recording rule %s is not named level:metric:operations" % name)
slo = [r for g in rules["groups"] for r in g["rules"] if r.get("record") == "otp:slo_target:ratio"]
if len(slo) != 1:
    errors.append("otp:slo_target:ratio must be defined exactly once (found %d)" % len(slo))

names = []
for g in alerts["groups"]:
    for r in g["rules"]:
        if "record" in r:
            errors.append("alerts.yml holds a recording rule (%s)" % r["record"])
            continue
        a = r["alert"]
        names.append(a)
        sev = r.get("labels", {}).get("severity")
        if sev not in ("critical", "warning"):
            errors.append("%s: severity must be critical or warning, got %r" % (a, sev))
        ann = r.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                errors.append("%s: annotation %s missing" % (a, key))
        url = ann.get("runbook_url", "")
        m = re.search(r"docs/runbooks\.md#([\w-]+)$", url)
        if not m:
            errors.append("%s: runbook_url %r does not point at docs/runbooks.md#<section>" % (a, url))
        elif m.group(1) not in anchors:
            errors.append("%s: runbook section #%s not found in docs/runbooks.md" % (a, m.group(1)))
        elif m.group(1) != a.lower():
            errors.append("%s: runbook anchor should be #%s" % (a, a.lower()))
        # The SLO value is written nowhere but in otp:slo_target:ratio.
        if "SLO" in a and "slo_error_budget" not in r["expr"]:
            errors.append("%s: must derive its threshold from otp:slo_error_budget:ratio" % a)
        # Every recording rule the alert reads exists.
        for used in set(re.findall(r"\b[a-z_]*:[a-z0-9_]+:[a-z0-9_]+\b", r["expr"])):
            if used not in records:
                errors.append("%s reads %s, which rules.yml does not record" % (a, used))
if len(names) != len(set(names)):
    errors.append("duplicate alert names")

# Each alert is shown firing in a unit test, and each test file also asserts silence.
fired, silent = set(), set()
for path in sorted(glob.glob("deploy/prometheus/tests/*.yml")):
    for t in yaml.safe_load(open(path))["tests"]:
        for at in t.get("alert_rule_test", []) or []:
            (fired if at.get("exp_alerts") else silent).add(at["alertname"])
for a in names:
    if a not in fired:
        errors.append("%s is never shown firing in deploy/prometheus/tests/" % a)
    if a not in silent:
        errors.append("%s is never shown silent in deploy/prometheus/tests/" % a)

print("%d recording rule names, %d alerts, %d runbook sections" % (len(records), len(names), len(anchors)))
for e in errors:
    print("ERROR:", e)
sys.exit(1 if errors else 0)
PY

# ------------------------------------------------------------------------------------------------
# Dashboards
# ------------------------------------------------------------------------------------------------
step "dashboards are up to date with dashboards/generate.py" python3 dashboards/generate.py --check

step "dashboard structure (uid, datasource variable, units, descriptions, variables, rates)" python3 - <<'PY'
import glob, json, re, sys

ALLOWED_VARS = {"$app_id", "$channel", "$country", "$__rate_interval", "$__range", "$__interval"}
errors = []
uids = {}
queries = 0

def walk_datasources(node, where):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                if isinstance(v, dict):
                    uid = v.get("uid")
                    if uid != "${datasource}":
                        errors.append("%s: datasource uid %r (only ${datasource} is allowed)" % (where, uid))
                    if v.get("type") not in ("prometheus", None):
                        errors.append("%s: datasource type %r" % (where, v.get("type")))
                elif v is not None:
                    errors.append("%s: datasource given as %r (use {type, uid: ${datasource}})" % (where, v))
            walk_datasources(v, where)
    elif isinstance(node, list):
        for v in node:
            walk_datasources(v, where)

def check_expr(expr, where):
    for var in set(re.findall(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", expr)):
        if var.replace("{", "").replace("}", "") not in ALLOWED_VARS:
            errors.append("%s: template variable %s not allowed in expressions" % (where, var))
    for fn, window in re.findall(r"\b(rate|irate|increase)\s*\([^\[\]()]*\[([^\]]+)\]", expr):
        ok = {"$__rate_interval"} if fn in ("rate", "irate") else {"$__rate_interval", "$__range"}
        if window not in ok:
            errors.append("%s: %s(...[%s]) must use %s" % (where, fn, window, " or ".join(sorted(ok))))

files = sorted(glob.glob("dashboards/*.json"))
if not files:
    errors.append("no dashboards/*.json")
for path in files:
    try:
        d = json.load(open(path, encoding="utf-8"))
    except ValueError as e:
        errors.append("%s: invalid JSON: %s" % (path, e))
        continue
    uid = d.get("uid")
    if not uid or not re.match(r"^[A-Za-z0-9_-]{1,40}$", uid):
        errors.append("%s: missing or invalid uid %r" % (path, uid))
    elif uid in uids:
        errors.append("%s: uid %s already used by %s" % (path, uid, uids[uid]))
    else:
        uids[uid] = path
    if d.get("id") not in (None,):
        errors.append("%s: has a numeric id (remove it so the import creates its own)" % path)
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append("%s: needs a `datasource` variable of type datasource, query prometheus" % path)
    walk_datasources(d.get("templating", {}), path + " templating")
    walk_datasources(d.get("annotations", {}), path + " annotations")
    used = set()
    for p in d.get("panels", []):
        where = "%s panel %r" % (path, p.get("title"))
        if p.get("type") == "row":
            continue
        walk_datasources(p, where)
        if not (p.get("fieldConfig", {}).get("defaults", {}).get("unit")):
            errors.append("%s: no unit in fieldConfig.defaults.unit" % where)
        if len(p.get("description", "")) < 40:
            errors.append("%s: needs a description saying what to do when it looks bad" % where)
        if p.get("datasource", {}).get("uid") != "${datasource}":
            errors.append("%s: panel datasource must be ${datasource}" % where)
        targets = p.get("targets", [])
        if not targets:
            errors.append("%s: no targets" % where)
        for t in targets:
            expr = t.get("expr", "")
            if not expr.strip():
                errors.append("%s: target %s without expr" % (where, t.get("refId")))
                continue
            queries += 1
            check_expr(expr, "%s target %s" % (where, t.get("refId")))
            used |= set(re.findall(r"\$(app_id|channel|country)\b", expr))
    for name in ("app_id", "channel", "country"):
        if name in variables and name not in used:
            errors.append("%s: variable %s filters nothing" % (path, name))
    print("%s: uid %s, %d panels" % (path, uid, sum(1 for p in d.get("panels", []) if p.get("type") != "row")))

# queries.jsonl lists exactly the dashboards' targets.
listed = [json.loads(l) for l in open("dashboards/queries.jsonl", encoding="utf-8") if l.strip()]
if len(listed) != queries:
    errors.append("dashboards/queries.jsonl lists %d queries, the dashboards have %d" % (len(listed), queries))
print("%d panel queries (dashboards/queries.jsonl)" % queries)
for e in errors:
    print("ERROR:", e)
sys.exit(1 if errors else 0)
PY

# Every dashboard query, variables substituted, through a real Prometheus (empty TSDB): parse
# and type errors are caught here; that they return data is the live test's job.
dashboard_queries_in_prometheus() {
    if ! need prometheus; then
        echo "prometheus binary not found (Debian: apt-get install -y prometheus)"
        return 77
    fi
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    mkdir -p "$TMP/prom"
    cat >"$TMP/prom/prometheus.yml" <<EOF
global:
  evaluation_interval: 1m
rule_files:
  - $ROOT/deploy/prometheus/rules.yml
  - $ROOT/deploy/prometheus/alerts.yml
EOF
    prometheus --config.file="$TMP/prom/prometheus.yml" --storage.tsdb.path="$TMP/prom/data" \
        --web.listen-address="127.0.0.1:$port" --log.level=warn >"$TMP/prom/log" 2>&1 &
    PROM_PID=$!
    local i
    for i in $(seq 1 100); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/-/ready', timeout=1)" 2>/dev/null; then
            break
        fi
        if ! kill -0 "$PROM_PID" 2>/dev/null; then
            cat "$TMP/prom/log"
            return 1
        fi
        sleep 0.2
    done
    python3 - "http://127.0.0.1:$port" <<'PY'
import json, sys, urllib.error, urllib.parse, urllib.request
base = sys.argv[1]
SUB = {"$app_id": ".*", "$channel": ".*", "$country": ".*", "$__rate_interval": "1m",
       "$__range": "1h", "$__interval": "15s"}
bad = 0
n = 0
for line in open("dashboards/queries.jsonl", encoding="utf-8"):
    q = json.loads(line)
    expr = q["expr"]
    for k in sorted(SUB, key=len, reverse=True):
        expr = expr.replace(k, SUB[k])
    n += 1
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        answer = json.load(urllib.request.urlopen(url, timeout=10))
    except urllib.error.HTTPError as e:
        answer = json.load(e)
    if answer.get("status") != "success":
        bad += 1
        print("ERROR: %s / %s / %s: %s" % (q["dashboard"], q["panel"], q["ref_id"], answer.get("error")))
print("%d dashboard queries evaluated by Prometheus, %d rejected" % (n, bad))
sys.exit(1 if bad else 0)
PY
    local rc=$?
    kill "$PROM_PID" 2>/dev/null
    wait "$PROM_PID" 2>/dev/null
    PROM_PID=""
    return $rc
}
step "dashboard queries evaluated by a real Prometheus (variables substituted)" dashboard_queries_in_prometheus

# ------------------------------------------------------------------------------------------------
# Kubernetes
# ------------------------------------------------------------------------------------------------
k8s_schemas() {
    if ! need kubernetes-validate; then
        echo "installing kubernetes-validate (pip install -q kubernetes-validate)"
        python3 -m pip install -q kubernetes-validate >/dev/null 2>&1 || pip install -q kubernetes-validate >/dev/null 2>&1
        hash -r
        if ! need kubernetes-validate; then
            echo "kubernetes-validate could not be installed"
            return 1
        fi
    fi
    local core=()
    local f kind
    for f in deploy/kubernetes/*.yaml; do
        kind="$(python3 -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1])).get("apiVersion",""))' "$f")"
        case "$kind" in
            monitoring.coreos.com/* | kustomize.config.k8s.io/*) ;;
            *) core+=("$f") ;;
        esac
    done
    echo "core resources (strict, Kubernetes 1.29 and the package's default version):"
    kubernetes-validate --strict --quiet -k 1.29.0 "${core[@]}" || return 1
    kubernetes-validate --strict "${core[@]}" || return 1
    echo "ServiceMonitor, PrometheusRule (CRDs) and kustomization.yaml are not in the core schemas: checked structurally below"
}
step "deploy/kubernetes against the Kubernetes schemas (kubernetes-validate)" k8s_schemas

step "PrometheusRule is generated from deploy/prometheus/*.yml" python3 deploy/kubernetes/generate-prometheusrule.py --check

k8s_crds() {
    python3 - "$TMP" <<'PY' || return 1
import glob, os, sys, yaml
tmp = sys.argv[1]
docs = {}
for path in sorted(glob.glob("deploy/kubernetes/*.yaml")):
    for d in yaml.safe_load_all(open(path)):
        if d:
            docs.setdefault(d["kind"], []).append((path, d))
errors = []
def one(kind):
    items = docs.get(kind, [])
    if len(items) != 1:
        errors.append("expected exactly one %s, found %d" % (kind, len(items)))
        return None
    return items[0][1]
ns = one("Namespace")
sts, svc, sm, pr, kus = one("StatefulSet"), one("Service"), one("ServiceMonitor"), one("PrometheusRule"), one("Kustomization")
if sts and svc:
    pod = sts["spec"]["template"]
    labels = pod["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in sts["spec"]["selector"]["matchLabels"].items()):
        errors.append("StatefulSet selector does not match its pod labels")
    if any(labels.get(k) != v for k, v in svc["spec"]["selector"].items()):
        errors.append("Service selector does not match the StatefulSet's pods")
    if sts["spec"]["serviceName"] != svc["metadata"]["name"]:
        errors.append("StatefulSet serviceName is not the Service")
    ports = {p["name"]: p for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    for p in svc["spec"]["ports"]:
        if p["targetPort"] not in ports:
            errors.append("Service targetPort %s is no container port name" % p["targetPort"])
    mounts = {m["mountPath"] for c in pod["spec"]["containers"] for m in c["volumeMounts"]}
    for path in ("/var/lib/itnio-otp-exporter", "/var/spool/itnio-otp"):
        if path not in mounts:
            errors.append("StatefulSet does not mount %s" % path)
    if not sts["spec"].get("volumeClaimTemplates"):
        errors.append("StatefulSet has no volumeClaimTemplates for its state")
    names = {k: {d["metadata"]["name"] for _, d in docs.get(k, [])} for k in ("ConfigMap", "Secret", "PersistentVolumeClaim")}
    for v in pod["spec"]["volumes"]:
        for key, kind, field in (("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName"),
                                 ("persistentVolumeClaim", "PersistentVolumeClaim", "claimName")):
            if key in v and v[key][field] not in names[kind]:
                errors.append("volume %s refers to a missing %s %s" % (v["name"], kind, v[key][field]))
    sc = pod["spec"].get("securityContext", {})
    if not sc.get("runAsNonRoot"):
        errors.append("pod must set runAsNonRoot")
    for kind, items in docs.items():
        for path, d in items:
            if kind not in ("Namespace", "Kustomization") and ns and d["metadata"].get("namespace") != ns["metadata"]["name"]:
                errors.append("%s: namespace is not %s" % (path, ns["metadata"]["name"]))
if sm:
    if sm.get("apiVersion") != "monitoring.coreos.com/v1":
        errors.append("ServiceMonitor apiVersion must be monitoring.coreos.com/v1")
    spec = sm.get("spec", {})
    if svc and any(svc["metadata"]["labels"].get(k) != v for k, v in spec["selector"]["matchLabels"].items()):
        errors.append("ServiceMonitor selector does not match the Service's labels")
    ports = {p["name"] for p in svc["spec"]["ports"]} if svc else set()
    for ep in spec.get("endpoints", []):
        if ep.get("port") not in ports:
            errors.append("ServiceMonitor endpoint port %r is no Service port name" % ep.get("port"))
        allowed = {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels", "relabelings", "metricRelabelings"}
        for k in ep:
            if k not in allowed:
                errors.append("ServiceMonitor endpoint field %s unexpected" % k)
    if ns and ns["metadata"]["name"] not in spec.get("namespaceSelector", {}).get("matchNames", []):
        errors.append("ServiceMonitor namespaceSelector misses the namespace")
if pr:
    if pr.get("apiVersion") != "monitoring.coreos.com/v1" or set(pr["spec"]) != {"groups"}:
        errors.append("PrometheusRule must be monitoring.coreos.com/v1 with spec.groups only")
    with open(os.path.join(tmp, "prometheusrule-groups.yml"), "w") as f:
        yaml.safe_dump({"groups": pr["spec"]["groups"]}, f)
if kus:
    listed = set(kus["resources"])
    present = {os.path.basename(p) for p in glob.glob("deploy/kubernetes/*.yaml")} - {"kustomization.yaml"}
    if listed != present:
        errors.append("kustomization.yaml resources %s differ from the files %s" % (sorted(listed), sorted(present)))
print("ServiceMonitor, PrometheusRule, Kustomization and cross-references checked")
for e in errors:
    print("ERROR:", e)
sys.exit(1 if errors else 0)
PY
    if need promtool; then
        echo "PrometheusRule spec.groups extracted -> promtool check rules:"
        promtool check rules "$TMP/prometheusrule-groups.yml"
    fi
}
step "deploy/kubernetes: Prometheus Operator resources and cross-references" k8s_crds

# ------------------------------------------------------------------------------------------------
# systemd
# ------------------------------------------------------------------------------------------------
systemd_unit() {
    local unit=deploy/systemd/itnio-otp-exporter.service
    python3 - "$unit" <<'PY' || return 1
import sys
text = open(sys.argv[1]).read()
keys = {}
for line in text.splitlines():
    line = line.strip()
    if line and not line.startswith(("#", ";", "[")) and "=" in line:
        k, v = line.split("=", 1)
        keys.setdefault(k, []).append(v)
errors = []
want = {"User": None, "StateDirectory": None, "NoNewPrivileges": "yes", "ProtectSystem": "strict",
        "PrivateTmp": "yes", "ProtectHome": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": None, "SystemCallFilter": None, "ReadWritePaths": None}
for k, v in want.items():
    if k not in keys:
        errors.append("missing %s=" % k)
    elif v is not None and v not in keys[k]:
        errors.append("%s= should be %r" % (k, v))
if keys.get("User", ["root"])[0] in ("root", "0"):
    errors.append("must not run as root")
if "LoadCredential" not in keys and "EnvironmentFile" not in keys:
    errors.append("secrets need LoadCredential= or EnvironmentFile=")
print("unit directives present: User, StateDirectory, LoadCredential/EnvironmentFile, hardening")
for e in errors:
    print("ERROR:", e)
sys.exit(1 if errors else 0)
PY
    if ! need systemd-analyze; then
        echo "systemd-analyze not available: skipping systemd-analyze verify (static checks above passed)"
        return 0
    fi
    # The binary is not installed on this machine, and systemd-analyze verify rejects a unit whose
    # ExecStart= does not exist: verify a copy whose commands point at /bin/true instead.
    mkdir -p "$TMP/systemd"
    sed 's#/usr/local/bin/itnio-otp-exporter#/bin/true#' "$unit" >"$TMP/systemd/itnio-otp-exporter.service"
    echo "systemd-analyze verify on a copy with ExecStart/ExecStartPre -> /bin/true (the real binary is not installed here):"
    systemd-analyze verify "$TMP/systemd/itnio-otp-exporter.service" || return 1
    if systemd-analyze security --offline=yes "$TMP/systemd/itnio-otp-exporter.service" >"$TMP/systemd/security" 2>&1; then
        grep -i "overall exposure" "$TMP/systemd/security" || true
    fi
}
step "deploy/systemd unit (systemd-analyze verify)" systemd_unit

# ------------------------------------------------------------------------------------------------
# Docker
# ------------------------------------------------------------------------------------------------
step "deploy/docker: Dockerfile and docker-compose.yml (static)" python3 - <<'PY'
import os, re, sys, yaml
errors = []
df = open("deploy/docker/Dockerfile").read()
stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", df, re.M | re.I)
if len(stages) < 2:
    errors.append("Dockerfile must be multi-stage")
else:
    # The build image must satisfy the crate's rust-version (the MSRV of its dependencies).
    msrv = re.search(r'^rust-version\s*=\s*"(\d+)\.(\d+)"', open("Cargo.toml").read(), re.M)
    need = (int(msrv.group(1)), int(msrv.group(2))) if msrv else (1, 85)
    m = re.match(r"rust:(\d+)\.(\d+)", stages[0][0])
    if not m or (int(m.group(1)), int(m.group(2))) < need:
        errors.append("build stage must use a rust:%d.%d+ image (Cargo.toml rust-version), got %s" % (need + (stages[0][0],)))
    if "rust" in stages[-1][0]:
        errors.append("runtime stage must not be the Rust image")
if "cargo build --release --locked" not in df:
    errors.append("Dockerfile must run cargo build --release --locked")
final = df[df.rfind("\nFROM"):]
users = re.findall(r"^USER\s+(\S+)", final, re.M)
if not users or users[-1].split(":")[0] in ("root", "0"):
    errors.append("runtime stage must switch to a non-root USER")
if not re.search(r"^EXPOSE\s+8467\b", df, re.M):
    errors.append("Dockerfile must EXPOSE 8467")
if not os.path.exists("deploy/docker/Dockerfile.dockerignore"):
    errors.append("deploy/docker/Dockerfile.dockerignore missing (target/ would be sent as context)")

compose = yaml.safe_load(open("deploy/docker/docker-compose.yml"))
services = compose.get("services", {})
for s in ("demo", "prometheus", "grafana"):
    if s not in services:
        errors.append("compose: service %s missing" % s)
base = "deploy/docker"
for name, svc in services.items():
    b = svc.get("build")
    if b:
        ctx = os.path.normpath(os.path.join(base, b["context"]))
        if not os.path.exists(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))):
            errors.append("compose %s: dockerfile %s not found in context %s" % (name, b.get("dockerfile"), ctx))
    for v in svc.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith((".", "/")):
            if not os.path.exists(os.path.normpath(os.path.join(base, src))):
                errors.append("compose %s: mounted path %s does not exist" % (name, src))
        elif src not in (compose.get("volumes") or {}):
            errors.append("compose %s: named volume %s not declared" % (name, src))
demo = services.get("demo", {})
cmd = demo.get("command", [])
if "demo" not in cmd or "0.0.0.0:8467" not in cmd:
    errors.append("compose demo: command must be demo --listen 0.0.0.0:8467")
prom_mounts = " ".join(services.get("prometheus", {}).get("volumes", []))
for f in ("rules.yml", "alerts.yml"):
    if "../prometheus/" + f not in prom_mounts:
        errors.append("compose prometheus: does not mount deploy/prometheus/%s" % f)
graf_mounts = " ".join(services.get("grafana", {}).get("volumes", []))
if "../../dashboards" not in graf_mounts or "provisioning" not in graf_mounts:
    errors.append("compose grafana: must mount dashboards/ and the provisioning folder")
ds = yaml.safe_load(open("deploy/docker/grafana/provisioning/datasources/prometheus.yml"))
if not any(d.get("type") == "prometheus" and "prometheus:9090" in d.get("url", "") for d in ds["datasources"]):
    errors.append("Grafana datasource provisioning must point at http://prometheus:9090")
dp = yaml.safe_load(open("deploy/docker/grafana/provisioning/dashboards/otp.yml"))
if not any(p["options"]["path"] == "/var/lib/grafana/dashboards" for p in dp["providers"]):
    errors.append("Grafana dashboard provider must read /var/lib/grafana/dashboards")
print("Dockerfile: %d stages (%s), non-root, EXPOSE 8467; compose services: %s"
      % (len(stages), " -> ".join(s[0] for s in stages), ", ".join(services)))
for e in errors:
    print("ERROR:", e)
sys.exit(1 if errors else 0)
PY

compose_config() {
    if need docker && docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        docker compose -f deploy/docker/docker-compose.yml config --quiet
    else
        echo "no docker engine with the compose plugin here: docker compose config not run (static checks above)"
        return 77
    fi
}
step "docker compose config" compose_config

# ------------------------------------------------------------------------------------------------
# Example configurations (deploy/systemd, deploy/docker, the Kubernetes ConfigMap)
# ------------------------------------------------------------------------------------------------
step "example configurations use only the documented keys" python3 - "$TMP" <<'PY'
import os, sys, yaml
tmp = sys.argv[1]
KEYS = {
    "": {"listen", "state_dir", "api", "default_app", "apps", "spool", "tracking", "polling"},
    "api": {"base_url", "api_key", "api_secret", "api_secret_file", "timeout", "max_in_flight",
            "max_requests_per_second", "timezone"},
    "spool": {"dir", "rescan_interval", "max_file_bytes"},
    "tracking": {"verification_window", "settle_timeout", "not_found_grace", "max_age"},
    "polling": {"first_delay", "max_interval"},
}
configs = {"deploy/systemd/config.yml": open("deploy/systemd/config.yml").read(),
           "deploy/docker/config.yml": open("deploy/docker/config.yml").read()}
cm = yaml.safe_load(open("deploy/kubernetes/configmap.yaml"))
configs["deploy/kubernetes/configmap.yaml (config.yml)"] = cm["data"]["config.yml"]
errors = []
os.makedirs(os.path.join(tmp, "configs"), exist_ok=True)
for i, (name, text) in enumerate(configs.items()):
    c = yaml.safe_load(text)
    for section, allowed in KEYS.items():
        node = c if section == "" else c.get(section, {})
        for k in node:
            if k not in allowed:
                errors.append("%s: unknown key %s%s" % (name, section + "." if section else "", k))
    if not c.get("apps"):
        errors.append("%s: apps missing" % name)
    if bool(c["api"].get("api_secret")) == bool(c["api"].get("api_secret_file")):
        errors.append("%s: set exactly one of api_secret, api_secret_file" % name)
    # A copy whose secret file exists here, for check-config below.
    if c["api"].get("api_secret_file"):
        secret = os.path.join(tmp, "configs", "secret")
        open(secret, "w").write("check-deploy\n")
        c["api"]["api_secret_file"] = secret
    yaml.safe_dump(c, open(os.path.join(tmp, "configs", "%d.yml" % i), "w"))
print("%d example configurations checked" % len(configs))
for e in errors:
    print("ERROR:", e)
sys.exit(1 if errors else 0)
PY

check_config_binary() {
    local bin=""
    local b
    # The most recently built of the release and debug binaries.
    for b in target/release/itnio-otp-exporter target/debug/itnio-otp-exporter; do
        if [ -x "$b" ] && { [ -z "$bin" ] || [ "$b" -nt "$bin" ]; }; then bin="$b"; fi
    done
    if [ -z "$bin" ]; then
        echo "no built itnio-otp-exporter in target/: check-config not run (this script never builds)"
        return 77
    fi
    # A binary that really validates: its help names --config, and it rejects an unknown key.
    printf 'api:\n  api_key: k\n  api_secret: s\n  no_such_key: 1\napps:\n  - id: a\n' >"$TMP/configs/invalid.yml.bad"
    if ! "$bin" check-config --help 2>&1 | grep -q -- '--config' ||
        "$bin" check-config --config "$TMP/configs/invalid.yml.bad" >/dev/null 2>&1; then
        echo "$bin does not validate configurations yet (stale or unfinished build): check-config not run"
        return 77
    fi
    local f rc=0
    echo "using $bin (secret files pointed at a temporary file, ITNIO_API_SECRET set)"
    for f in "$TMP"/configs/*.yml; do
        ITNIO_API_SECRET=check-deploy "$bin" check-config --config "$f" || rc=1
    done
    return $rc
}
step "example configurations pass itnio-otp-exporter check-config (if built)" check_config_binary

# ------------------------------------------------------------------------------------------------
echo
echo "check-deploy: ${PASSED} passed, ${#FAILED[@]} failed, ${#SKIPPED[@]} skipped"
for s in "${SKIPPED[@]}"; do echo "  skipped: $s"; done
for f in "${FAILED[@]}"; do echo "  FAILED: $f"; done
[ ${#FAILED[@]} -eq 0 ]
