"""Issue 19: deploy/ against the real binary. Schema and security checks of
the manifests are deploy/check/check.mjs (node, run by check.sh); here:
every shape's tidepool.ini passes `tidepool --check`, and every metric name
that the Grafana dashboard and the PrometheusRule query exists in a live
/metrics page (and the rule's alerts are the ones doc/metrics.md shows)."""

import json
import re
import subprocess

import pytest
import yaml

from conftest import REPO, free_port, tidepool_bin
from test_http import http_get

DEPLOY = REPO / "deploy"
SHAPES = ("sidecar", "daemonset", "gateway")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@pytest.mark.parametrize("shape", SHAPES + ("image",))
def test_shape_ini_passes_check(shape, tmp_path):
    text = (DEPLOY / shape / "tidepool.ini").read_text()
    # the Secret's mount, here: the shape's example userlist.txt
    userlist = DEPLOY / shape / "userlist.txt"
    if userlist.exists():
        assert "auth_file = /etc/tidepool-auth/userlist.txt" in text
        text = text.replace("/etc/tidepool-auth/userlist.txt", str(userlist))
    ini = tmp_path / "tidepool.ini"
    ini.write_text(text)
    r = subprocess.run([tidepool_bin(), "--check", str(ini)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def live_families(tidepool):
    port = free_port()
    tp = tidepool(pool_mode="transaction", metrics_port=port)
    with tp.connect() as c:
        c.execute("SELECT 1")
    status, _, body = http_get(port, "/metrics")
    assert status == 200
    return {m.group(1): m.group(2) for m in re.finditer(r"^# TYPE (\S+) (\S+)$", body, re.M)}


def names_in(expr):
    return set(re.findall(r"\btidepool_[a-z0-9_]+\b", expr))


def exported(name, families):
    if name in families:
        return True
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[:-len(suffix)]
        if name.endswith(suffix) and families.get(base) == "histogram":
            return True
    return False


def dashboard_exprs():
    dash = json.loads((DEPLOY / "monitoring" / "dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v.get("query", "") for v in dash["templating"]["list"]]
    return exprs


def rule_alerts():
    doc = yaml.safe_load((DEPLOY / "monitoring" / "prometheusrule.yaml").read_text())
    return [r for g in doc["spec"]["groups"] for r in g["rules"]]


def test_dashboard_and_alerts_name_exported_metrics(tidepool):
    families = live_families(tidepool)
    used = set()
    for expr in dashboard_exprs() + [r["expr"] for r in rule_alerts()]:
        used |= names_in(expr)
    assert len(used) >= 15, used
    missing = sorted(n for n in used if not exported(n, families))
    assert not missing, "not on /metrics: %s" % missing


def test_prometheusrule_has_the_alerts_of_metrics_md():
    doc = (REPO / "doc" / "metrics.md").read_text()
    in_doc = re.findall(r"^\s*- alert: (\w+)$", doc, re.M)
    assert in_doc
    assert [r["alert"] for r in rule_alerts()] == in_doc
