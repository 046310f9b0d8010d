#!/usr/bin/env python3
"""Generates the Grafana dashboards of itnio-otp-exporter and the list of their queries.

    python3 dashboards/generate.py           # rewrite dashboards/*.json and dashboards/queries.jsonl
    python3 dashboards/generate.py --check   # exit 1 if the committed files differ from this script

The JSON files are what operators import (Grafana UI, provisioning, API); this script is their
source, so that every panel follows the same rules: datasource from the `datasource` variable,
a unit, a description that says what to do when the panel looks bad, `$__rate_interval` in rates.

queries.jsonl has one JSON object per panel query (dashboard uid, panel id and title, refId,
expr, instant or range): the live-Prometheus test substitutes the template variables and runs
each one. Variables used in expressions: $app_id, $channel, $country (regex matchers; "All" is
`.*`), $__rate_interval, $__range, $__interval. Grafana ignores the .jsonl file when it
provisions this folder.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}

# Label filters built from the template variables.
F_ORDERS = 'app_id=~"$app_id", channel=~"$channel", country=~"$country"'  # orders, attempts, cost, verification latency
F_APP_COUNTRY = 'app_id=~"$app_id", country=~"$country"'  # fallbacks, SMS segments
F_LATENCY = 'channel=~"$channel", country=~"$country"'  # delivery latency (no app_id label)
RI = "$__rate_interval"


def rate(metric, selector, window=RI):
    return "rate(%s{%s}[%s])" % (metric, selector, window)


def ratio(num_metric, num_extra, den_metric, selector, by, window=RI, fn="rate"):
    """sum(num) / sum(den) with 0 (not a gap) where the numerator never had a series."""
    by_clause = "sum by (%s) " % by if by else "sum "
    den = "%s(%s(%s{%s}[%s]))" % (by_clause, fn, den_metric, selector, window)
    num = "%s(%s(%s{%s, %s}[%s]))" % (by_clause, fn, num_metric, selector, num_extra, window)
    return "(%s or %s * 0) / %s" % (num, den, den)


class Dash:
    def __init__(self, uid, title, description, tags, variables):
        self.uid = uid
        self.title = title
        self.description = description
        self.tags = tags
        self.variables = variables
        self.panels = []
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.next_id = 1

    def row(self, title):
        self._newline()
        self.panels.append({
            "type": "row", "id": self._id(), "title": title, "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": [],
        })
        self.y += 1

    def _newline(self):
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def panel(self, ptype, title, description, targets, unit, w=12, h=8, **extra):
        if self.x + w > 24:
            self._newline()
        fc = extra.pop("fieldConfig", {"defaults": {}, "overrides": []})
        fc.setdefault("defaults", {})["unit"] = unit
        fc.setdefault("overrides", [])
        p = {
            "type": ptype,
            "id": self._id(),
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "fieldConfig": fc,
            "targets": [],
        }
        for i, t in enumerate(targets):
            t = dict(t)
            t.setdefault("refId", "ABCDEFGHIJ"[i])
            t["datasource"] = DS
            t.setdefault("range", not t.get("instant", False))
            t.setdefault("instant", False)
            if t["instant"] and "format" not in t and ptype == "table":
                t["format"] = "table"
            p["targets"].append(t)
        p.update(extra)
        self.panels.append(p)
        self.x += w
        self.row_h = max(self.row_h, h)
        return p

    def json(self):
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": self.tags,
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"},
            "timepicker": {},
            "timezone": "",
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "weekStart": "",
            "links": [
                {"title": "OTP dashboards", "type": "dashboards", "tags": ["otp"], "asDropdown": True,
                 "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                 "tooltip": "", "url": ""},
            ],
            "annotations": {"list": [{
                "name": "OTP alerts",
                "datasource": DS,
                "enable": True,
                "hide": False,
                "iconColor": "red",
                "expr": 'ALERTS{alertname=~"Otp.*", alertstate="firing"}',
                "step": "60s",
                "titleFormat": "{{alertname}}",
                "textFormat": "{{app_id}} {{channel}} {{country}} {{instance}}",
                "tagKeys": "severity",
                "useValueForTime": False,
            }]},
            "templating": {"list": self.variables},
            "panels": self.panels,
        }


def var_datasource():
    return {
        "name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
        "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [],
        "refresh": 1, "regex": "", "skipUrlSync": False,
    }


def var_query(name, label, query, description):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "definition": query, "query": query, "description": description,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": 0, "includeAll": True, "allValue": ".*", "multi": True, "options": [],
        "refresh": 2, "regex": "", "skipUrlSync": False, "sort": 1,
    }


def otp_vars():
    return [
        var_datasource(),
        var_query("app_id", "App", "label_values(otp_orders_total, app_id)",
                  "ITNIO application id (apps[].id of the exporter's config)."),
        var_query("channel", "Channel", 'label_values(otp_orders_total{app_id=~"$app_id"}, channel)',
                  "sms, call, sna, or none (orders without any attempt)."),
        var_query("country", "Country", 'label_values(otp_orders_total{app_id=~"$app_id"}, country)',
                  "ISO 3166 alpha-2 country of the order's first attempt (unknown when unresolvable)."),
    ]


def ts(legend, expr, **kw):
    t = {"expr": expr, "legendFormat": legend, "editorMode": "code"}
    t.update(kw)
    return t


def inst(expr, legend="__auto", fmt=None):
    t = {"expr": expr, "legendFormat": legend, "instant": True, "editorMode": "code"}
    if fmt:
        t["format"] = fmt
    return t


def tsfield(min_=None, max_=None, stack=False, fill=10, thresholds=None, threshold_style="off", decimals=None):
    d = {
        "custom": {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 60 if stack else fill,
            "showPoints": "never", "spanNulls": False, "axisSoftMin": 0 if min_ is None else None,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": threshold_style},
        },
        "color": {"mode": "palette-classic"},
    }
    if d["custom"]["axisSoftMin"] is None:
        del d["custom"]["axisSoftMin"]
    if min_ is not None:
        d["min"] = min_
    if max_ is not None:
        d["max"] = max_
    if thresholds:
        d["thresholds"] = {"mode": "absolute", "steps": thresholds}
    if decimals is not None:
        d["decimals"] = decimals
    return d


def override_name(name, props):
    return {"matcher": {"id": "byName", "options": name}, "properties": props}


def override_regex(regex, props):
    return {"matcher": {"id": "byRegexp", "options": regex}, "properties": props}


SLO_LINE_OVERRIDE = override_name("SLO target", [
    {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
    {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
    {"id": "custom.fillOpacity", "value": 0},
    {"id": "custom.lineWidth", "value": 2},
])
SLO_TARGET = ts("SLO target", "otp:slo_target:ratio")
TS_OPTIONS = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["mean", "lastNotNull"], "showLegend": True},
              "tooltip": {"mode": "multi", "sort": "desc"}}
TS_OPTIONS_BOTTOM = {"legend": {"displayMode": "list", "placement": "bottom", "calcs": [], "showLegend": True},
                     "tooltip": {"mode": "multi", "sort": "desc"}}
STAT_OPTIONS = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value", "graphMode": "area", "justifyMode": "auto", "orientation": "auto",
                "textMode": "auto", "wideLayout": True, "showPercentChange": False}
RED_GREEN_0 = [{"color": "red", "value": None}, {"color": "green", "value": 0}]


# ---------------------------------------------------------------------------------------------
# OTP delivery health: the on-call front page.
# ---------------------------------------------------------------------------------------------
def delivery_health():
    d = Dash("otp-delivery-health", "OTP delivery health",
             "On-call front page of itnio-otp-exporter: are OTPs verified (against the SLO), delivered, "
             "fast and affordable, and is the exporter itself healthy. Runbooks: docs/runbooks.md.",
             ["otp", "itnio"], otp_vars())
    verified_ratio_range = ratio("otp_orders_total", 'outcome="verified"', "otp_orders_total", F_ORDERS, None,
                                 window="$__range", fn="increase")

    d.row("Verification (conversion) against the SLO")
    d.panel("stat", "Verification rate (time range)",
            "Verified ÷ finalized orders over the selected time range, for the selected apps, channels "
            "and countries. If it is low: look at \"Margin to SLO\" and \"Outcomes over time\" to see "
            "since when and which outcome grew, then open the Regions dashboard to find the country.",
            [inst(verified_ratio_range)], "percentunit", w=4, h=6,
            options=STAT_OPTIONS,
            fieldConfig={"defaults": {"decimals": 2, "color": {"mode": "fixed", "fixedColor": "blue"}}})
    d.panel("stat", "Margin to SLO (time range)",
            "Verification rate over the selected range minus the SLO target (recording rule "
            "otp:slo_target:ratio, the one place the SLO lives). Red (negative) means the selection "
            "converts worse than the SLO: check the burn-rate panel to see how fast the error budget goes, "
            "then the delivery success per channel below.",
            [inst("(%s) - on () group_left () otp:slo_target:ratio" % verified_ratio_range)], "percentunit",
            w=4, h=6, options=STAT_OPTIONS,
            fieldConfig={"defaults": {"decimals": 2, "thresholds": {"mode": "absolute", "steps": RED_GREEN_0},
                                      "color": {"mode": "thresholds"}}})
    d.panel("timeseries", "Verification rate vs SLO",
            "Verified ÷ finalized orders of the selection (solid) against the SLO target (dashed red). "
            "A drop below the line: if it is sudden and deep, page-level (see alerts "
            "OtpVerificationSLOFastBurn / OtpVerificationCollapsed); compare with \"Delivery success rate per "
            "channel\" — if delivery fell too, the provider or a route is failing; if delivery is fine but "
            "conversion fell, users do not enter the codes (app release, expired codes, latency).",
            [ts("verification rate", ratio("otp_orders_total", 'outcome="verified"', "otp_orders_total", F_ORDERS, None)),
             SLO_TARGET],
            "percentunit", w=16, h=6, options=TS_OPTIONS_BOTTOM,
            fieldConfig={"defaults": tsfield(max_=1, decimals=1), "overrides": [SLO_LINE_OVERRIDE]})
    d.panel("timeseries", "Verification rate per app and channel",
            "Verified ÷ finalized orders per app and per channel (the verification's channel, else the "
            "last attempt's, `none` for orders never sent) against the SLO line. One line far below the "
            "others tells where to look: one app (its integration, its sender id) or one channel (SMS "
            "routes vs voice). `none` at 0% is normal; a growing volume of `none` is not (orders never sent).",
            [ts("{{app_id}} {{channel}}", ratio("otp_orders_total", 'outcome="verified"', "otp_orders_total", F_ORDERS, "app_id, channel")),
             SLO_TARGET],
            "percentunit", w=12, h=9, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(max_=1, decimals=1), "overrides": [SLO_LINE_OVERRIDE]})
    d.panel("timeseries", "Error-budget burn rate (recorded 1h / 6h / 3d)",
            "How many times faster than allowed the error budget (1 − SLO) burns, per app, from the recording "
            "rules app:otp_verification_errors:ratio_rate1h/6h/3d ÷ otp:slo_error_budget:ratio. Paging "
            "thresholds: 14.4× (1h, with 5m), 6× (6h, with 30m); ticket: 1× (3d, with 6h). Above 14.4×: "
            "incident, follow the runbook OtpVerificationSLOFastBurn. Only the app filter applies here.",
            [ts("{{app_id}} 1h", 'app:otp_verification_errors:ratio_rate1h{app_id=~"$app_id"} / on () group_left () otp:slo_error_budget:ratio'),
             ts("{{app_id}} 6h", 'app:otp_verification_errors:ratio_rate6h{app_id=~"$app_id"} / on () group_left () otp:slo_error_budget:ratio'),
             ts("{{app_id}} 3d", 'app:otp_verification_errors:ratio_rate3d{app_id=~"$app_id"} / on () group_left () otp:slo_error_budget:ratio')],
            "suffix:×", w=12, h=9, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(min_=0, threshold_style="dashed", decimals=2, thresholds=[
                {"color": "green", "value": None}, {"color": "yellow", "value": 1},
                {"color": "orange", "value": 6}, {"color": "red", "value": 14.4}])})

    d.row("Outcomes")
    d.panel("timeseries", "Outcomes over time (stacked)",
            "Finalized orders per second by outcome: verified, unverified (delivered, never entered), "
            "undelivered (every attempt failed), failed (wrong code), not_found (the provider has no record: "
            "the order id written to the spool does not match the one sent), expired (undecidable at "
            "tracking.max_age: API unreachable or attempts stuck pending). A growing band other than "
            "verified names the problem: undelivered → routes (Regions dashboard), unverified → users/app, "
            "not_found → the issuing app's spool integration, expired → exporter/API (Exporter internals).",
            [ts("{{outcome}}", 'sum by (outcome) (%s)' % rate("otp_orders_total", F_ORDERS))],
            "cps", w=24, h=8, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(stack=True), "overrides": [
                override_name("verified", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "green"}}]),
                override_name("undelivered", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}]),
                override_name("unverified", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "yellow"}}]),
                override_name("expired", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "purple"}}]),
                override_name("not_found", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}]),
                override_name("failed", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "orange"}}]),
            ]})

    d.row("Delivery and fallback")
    d.panel("timeseries", "Delivery success rate per channel",
            "Delivered ÷ all attempts of finalized orders, per channel (an attempt still pending when its "
            "order was finalized counts as not delivered). SMS dropping while call holds: SMS routes fail "
            "and voice fallback rescues users at a higher cost — find the country and MCC on the Regions "
            "dashboard. Every channel dropping at once: provider-wide incident; check the provider status "
            "and the exporter's API errors.",
            [ts("{{channel}}", ratio("otp_delivery_attempts_total", 'result="delivered"', "otp_delivery_attempts_total", F_ORDERS, "channel"))],
            "percentunit", w=8, h=8, options=TS_OPTIONS_BOTTOM,
            fieldConfig={"defaults": tsfield(max_=1, decimals=1)})
    d.panel("timeseries", "Fallback rate (fallbacks ÷ orders)",
            "Channel switches inside an order (e.g. sms→call) per finalized order, total and per "
            "from→to pair. Filtered by app and country only (a fallback has two channels). A spike means "
            "the first channel fails somewhere (alert OtpFallbackRateSpike): open Regions, sort the table "
            "by fallback rate, then check SMS delivery per MCC of the top country.",
            [ts("all fallbacks", "(sum (%s) or sum (%s) * 0) / sum (%s)" % (
                rate("otp_channel_fallbacks_total", F_APP_COUNTRY), rate("otp_orders_total", F_APP_COUNTRY),
                rate("otp_orders_total", F_APP_COUNTRY))),
             ts("{{from}}→{{to}}", 'sum by (from, to) (%s) / on () group_left () sum (%s)' % (
                 rate("otp_channel_fallbacks_total", F_APP_COUNTRY), rate("otp_orders_total", F_APP_COUNTRY)))],
            "percentunit", w=8, h=8, options=TS_OPTIONS_BOTTOM,
            fieldConfig={"defaults": tsfield(min_=0, decimals=1)})
    sms_call = rate("otp_channel_fallbacks_total", F_APP_COUNTRY + ', from="sms", to="call"')
    d.panel("timeseries", "SMS→call conversion after fallback",
            "Orders verified by voice call ÷ sms→call fallbacks (capped at 100%): how well the voice "
            "fallback rescues users whose SMS failed. Low values while the fallback rate is high: the "
            "voice route of that country fails too, or users miss the call — check call delivery success "
            "on the Regions dashboard. Filtered by app and country.",
            [ts("sms→call → verified", "clamp_max((sum (%s) or sum (%s) * 0) / sum (%s), 1)" % (
                rate("otp_orders_total", F_APP_COUNTRY + ', channel="call", outcome="verified"'), sms_call, sms_call))],
            "percentunit", w=8, h=8, options=TS_OPTIONS_BOTTOM,
            fieldConfig={"defaults": tsfield(min_=0, max_=1, decimals=1)})

    d.row("Latency")
    lat = "sum by (channel, le) (%s)" % rate("otp_delivery_latency_seconds_bucket", F_LATENCY)
    d.panel("timeseries", "Delivery latency p50 / p95 / p99 per channel",
            "Time from submit to delivery of delivered attempts (SMS submit→DLR, call submit→answer, "
            "SNA request→result), quantiles per channel. The app filter does not apply (the histogram has "
            "no app_id). p95 above its threshold (sms 30s, call 60s, sna 10s: alert OtpDeliveryLatencyHigh) "
            "makes codes expire: find the slow countries in the Regions table (p95 column) and raise it "
            "with the provider.",
            [ts("{{channel}} p50", "histogram_quantile(0.5, %s)" % lat),
             ts("{{channel}} p95", "histogram_quantile(0.95, %s)" % lat),
             ts("{{channel}} p99", "histogram_quantile(0.99, %s)" % lat)],
            "s", w=12, h=8, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(min_=0)})
    ver = "sum by (channel, le) (%s)" % rate("otp_verification_latency_seconds_bucket", F_ORDERS)
    d.panel("timeseries", "Time to verify p50 / p95 per channel",
            "Verified orders: first attempt's submit → verification, per verification channel. It includes "
            "delivery, the user reading and typing the code, and any fallback. Growing while delivery "
            "latency is flat: a UX or app problem (code entry screen, deep links), not delivery. Near the "
            "verification window (default 5 min): users barely make it; expect more `unverified`.",
            [ts("{{channel}} p50", "histogram_quantile(0.5, %s)" % ver),
             ts("{{channel}} p95", "histogram_quantile(0.95, %s)" % ver)],
            "s", w=12, h=8, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(min_=0)})

    d.row("Cost")
    d.panel("timeseries", "Spend per hour (USD)",
            "SMS pay plus call cost per hour, stacked per channel, at the current pace. A jump without "
            "more verified OTPs: SMS pumping (fraudulent traffic to premium numbers), more voice "
            "fallbacks, or a price change — see \"Cost per verified OTP\" and the per-MCC table on Regions.",
            [ts("{{channel}}", "sum by (channel) (%s) * 3600" % rate("otp_cost_usd_total", F_ORDERS))],
            "currencyUSD", w=12, h=8, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(stack=True, decimals=2)})
    d.panel("timeseries", "Cost per verified OTP (USD)",
            "Spend ÷ verified orders, overall and per app. It rises when money is spent on OTPs that are "
            "never verified (failed or pumped SMS, voice fallbacks). A jump in one country raises "
            "OtpCostPerVerifiedJump: open Regions, sort by cost per verified OTP.",
            [ts("all", "sum (%s) / sum (%s)" % (rate("otp_cost_usd_total", F_ORDERS),
                                                 rate("otp_orders_total", F_ORDERS + ', outcome="verified"'))),
             ts("{{app_id}}", "sum by (app_id) (%s) / sum by (app_id) (%s)" % (
                 rate("otp_cost_usd_total", F_ORDERS), rate("otp_orders_total", F_ORDERS + ', outcome="verified"')))],
            "currencyUSD", w=12, h=8, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(min_=0, decimals=4)})

    d.row("Exporter health")
    d.panel("stat", "ITNIO API up",
            "Lowest otp_exporter_api_up of all exporter instances: UP while the provider accepts our "
            "credentials and answers. DOWN: every OTP panel above is stale — the daemon log says whether "
            "the API key/secret (status -1) or this host's IP (status -2) is rejected; runbook "
            "OtpExporterApiDown. Details on the Exporter internals dashboard.",
            [inst("min (otp_exporter_api_up)")], "none", w=6, h=5,
            options=dict(STAT_OPTIONS, graphMode="none", colorMode="background"),
            fieldConfig={"defaults": {
                "mappings": [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red", "index": 0},
                                                            "1": {"text": "UP", "color": "green", "index": 1}}}],
                "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]},
                "color": {"mode": "thresholds"}}})
    d.panel("stat", "Orders pending",
            "Orders the exporters are tracking (issued, not finalized yet), selected apps. It follows "
            "traffic × (verification window + settle time). Growing without more traffic: polls cannot keep "
            "up or the API fails — see Exporter internals and runbook OtpExporterPendingBacklogGrowing.",
            [inst('sum (otp_exporter_orders_pending{app_id=~"$app_id"})')], "short", w=6, h=5,
            options=STAT_OPTIONS, fieldConfig={"defaults": {"color": {"mode": "fixed", "fixedColor": "blue"}}})
    d.panel("stat", "Oldest pending order",
            "Age of the oldest tracked order, worst instance. It should stay below tracking.max_age "
            "(default 30 min); orange from 30 min, red from 40 min (alert OtpExporterOldestPendingTooOld): "
            "the API is unusable or the scheduler is stuck — runbook.",
            [inst("max (otp_exporter_oldest_pending_age_seconds)")], "s", w=6, h=5,
            options=STAT_OPTIONS,
            fieldConfig={"defaults": {"thresholds": {"mode": "absolute", "steps": [
                {"color": "green", "value": None}, {"color": "orange", "value": 1800}, {"color": "red", "value": 2400}]},
                "color": {"mode": "thresholds"}}})
    d.panel("stat", "Exporter instances reporting",
            "Exporter instances Prometheus scrapes right now (count of otp_exporter_build_info). Fewer "
            "than you run: an instance is down or not discovered — alerts OtpExporterDown / "
            "OtpExporterAbsent, runbook.",
            [inst("count (otp_exporter_build_info)")], "short", w=6, h=5,
            options=dict(STAT_OPTIONS, graphMode="none"),
            fieldConfig={"defaults": {"color": {"mode": "fixed", "fixedColor": "blue"}}})
    return d


# ---------------------------------------------------------------------------------------------
# Regions: investigating a regional failure.
# ---------------------------------------------------------------------------------------------
def regions():
    d = Dash("otp-regions", "OTP regions",
             "Which countries and mobile networks (MCC) fail, are slow, or cost too much. Start from the "
             "table (worst conversion first), confirm on the map, then drill into MCCs.",
             ["otp", "itnio"], otp_vars())
    R = "$__range"
    by = "country"
    vol = "sum by (country) (increase(otp_orders_total{%s}[%s]))" % (F_ORDERS, R)
    deliv = ratio("otp_delivery_attempts_total", 'result="delivered"', "otp_delivery_attempts_total", F_ORDERS, by, window=R, fn="increase")
    conv = ratio("otp_orders_total", 'outcome="verified"', "otp_orders_total", F_ORDERS, by, window=R, fn="increase")
    p95 = "histogram_quantile(0.95, sum by (country, le) (increase(otp_delivery_latency_seconds_bucket{%s}[%s])))" % (F_LATENCY, R)
    fb = "(sum by (country) (increase(otp_channel_fallbacks_total{%s}[%s])) or sum by (country) (increase(otp_orders_total{%s}[%s])) * 0) / sum by (country) (increase(otp_orders_total{%s}[%s]))" % (
        F_APP_COUNTRY, R, F_APP_COUNTRY, R, F_APP_COUNTRY, R)
    cpv = "sum by (country) (increase(otp_cost_usd_total{%s}[%s])) / sum by (country) (increase(otp_orders_total{%s, outcome=\"verified\"}[%s]))" % (F_ORDERS, R, F_ORDERS, R)

    cols = [("A", "Orders", "short", vol), ("B", "Delivery success", "percentunit", deliv),
            ("C", "Conversion", "percentunit", conv), ("D", "p95 delivery latency", "s", p95),
            ("E", "Fallback rate", "percentunit", fb), ("F", "Cost per verified OTP", "currencyUSD", cpv)]
    rename = {"Value #%s" % ref: name for ref, name, _, _ in cols}
    rename["country"] = "Country"
    pct_color = [{"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}},
                 {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                     {"color": "red", "value": None}, {"color": "orange", "value": 0.5}, {"color": "green", "value": 0.8}]}},
                 {"id": "decimals", "value": 1}]
    overrides = []
    for ref, name, unit, _ in cols:
        props = [{"id": "unit", "value": unit}]
        if name in ("Delivery success", "Conversion"):
            props += pct_color
        if name == "Cost per verified OTP":
            props.append({"id": "decimals", "value": 4})
        if name == "p95 delivery latency":
            props.append({"id": "decimals", "value": 1})
        overrides.append(override_name(name, props))
    d.row("Countries")
    d.panel("table", "Countries, worst conversion first (time range)",
            "One row per country over the selected time range: finalized orders, delivery success "
            "(delivered ÷ attempts), conversion (verified ÷ finalized), p95 delivery latency, fallback rate "
            "(fallbacks ÷ orders), cost per verified OTP. Sorted by conversion, worst first; click a column "
            "header to sort by another. Ignore rows with a handful of orders. A red row with normal volume: "
            "set the country variable to it and read the MCC panels below (one network or all of them?); "
            "delivery low → routes/provider (runbook OtpCountryDeliveryCollapse); delivery fine but "
            "conversion low → users do not get or enter the code (latency, sender id filtered as spam).",
            [inst(expr, fmt="table") | {"refId": ref} for ref, _, _, expr in cols],
            "short", w=24, h=11,
            options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""},
                     "sortBy": [{"displayName": "Conversion", "desc": False}]},
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": rename,
                                               "indexByName": {"country": 0, **{"Value #%s" % c[0]: i + 1 for i, c in enumerate(cols)}}}},
            ],
            fieldConfig={"defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False},
                                      "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]}},
                         "overrides": overrides})

    d.panel("geomap", "Conversion by country (time range)",
            "Each country (ISO 3166 alpha-2 code looked up in Grafana's country gazetteer) as a circle sized "
            "by finalized orders and coloured by conversion: red below 50%, orange below 80%, green above. "
            "A big red circle is where users are locked out: open the table above for its numbers and "
            "runbook OtpCountryConversionCollapse. `unknown` countries are not drawn.",
            [inst("%s" % conv, legend="{{country}}", fmt="table") | {"refId": "A"},
             inst(vol, legend="{{country}}", fmt="table") | {"refId": "B"}],
            "percentunit", w=14, h=12,
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {"excludeByName": {"Time": True},
                                               "renameByName": {"Value #A": "Conversion", "Value #B": "Orders"}}},
            ],
            options={
                "view": {"id": "zero", "lat": 20, "lon": 0, "zoom": 1, "allLayers": True},
                "controls": {"showZoom": True, "mouseWheelZoom": False, "showAttribution": True},
                "basemap": {"type": "default", "name": "Basemap", "config": {}},
                "layers": [{
                    "type": "markers", "name": "Conversion", "tooltip": True,
                    "location": {"mode": "lookup", "lookup": "country", "gazetteer": "public/gazetteer/countries.json"},
                    "config": {
                        "showLegend": True,
                        "style": {
                            "size": {"field": "Orders", "fixed": 5, "min": 4, "max": 20},
                            "color": {"field": "Conversion", "fixed": "dark-green"},
                            "opacity": 0.6,
                            "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                            "symbolAlign": {"horizontal": "center", "vertical": "center"},
                            "rotation": {"fixed": 0, "mode": "mod", "min": -360, "max": 360},
                            "textConfig": {"fontSize": 12, "offsetX": 0, "offsetY": 0, "textAlign": "center", "textBaseline": "middle"},
                        },
                    },
                }],
                "tooltip": {"mode": "details"},
            },
            fieldConfig={"defaults": {"decimals": 1, "color": {"mode": "thresholds"},
                                      "thresholds": {"mode": "absolute", "steps": [
                                          {"color": "red", "value": None}, {"color": "orange", "value": 0.5},
                                          {"color": "green", "value": 0.8}]}},
                         "overrides": [override_name("Orders", [{"id": "unit", "value": "short"}])]})

    # Conversion drop against the same hour yesterday, from the 1h recording rules.
    def conv1h(off):
        o = " offset 1d" if off else ""
        sel = "{%s}" % F_ORDERS
        return ("sum by (country) (app_channel_country:otp_orders_verified:rate1h%s%s) / "
                "sum by (country) (app_channel_country:otp_orders:rate1h%s%s)" % (sel, o, sel, o))
    guard = "sum by (country) (app_channel_country:otp_orders:rate1h{%s}) * 3600 >= 20" % F_ORDERS
    drop = "topk(10, ((%s) or (%s)) - (%s) and on (country) (%s))" % (conv1h(True), conv1h(False), conv1h(False), guard)
    d.panel("table", "Largest conversion drops vs the same hour yesterday",
            "Countries with at least 20 orders in the last hour, ranked by how much their last-hour "
            "conversion (recording rules app_channel_country:otp_orders_verified:rate1h ÷ …:otp_orders:rate1h) "
            "fell against the same hour yesterday (offset 1d): a drop of 0.30 means 30 points lower. "
            "Countries without traffic at that hour yesterday (or a Prometheus younger than a day) show 0. "
            "Ignores the time picker (always now). A large drop in a big country: open the table above "
            "filtered on it and follow runbook OtpCountryConversionCollapse.",
            [inst(drop, legend="{{country}}", fmt="table") | {"refId": "A"},
             inst("(%s) and on (country) (%s)" % (conv1h(False), guard), legend="{{country}}", fmt="table") | {"refId": "B"}],
            "percentunit", w=10, h=12,
            options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""},
                     "sortBy": [{"displayName": "Drop vs yesterday", "desc": True}]},
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "filterByValue", "options": {"filters": [{"fieldName": "Value #A", "config": {"id": "isNull", "options": {}}}],
                                                    "type": "exclude", "match": "any"}},
                {"id": "organize", "options": {"excludeByName": {"Time": True},
                                               "renameByName": {"country": "Country", "Value #A": "Drop vs yesterday",
                                                                "Value #B": "Conversion, last hour"}}},
            ],
            fieldConfig={"defaults": {"decimals": 1, "custom": {"align": "auto", "cellOptions": {"type": "auto"}},
                                      "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]}},
                         "overrides": [override_name("Drop vs yesterday", [
                             {"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}},
                             {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                                 {"color": "green", "value": None}, {"color": "orange", "value": 0.1}, {"color": "red", "value": 0.25}]}}])]})

    d.row("Per country over time")
    d.panel("timeseries", "Delivery success by country and channel",
            "Delivered ÷ attempts per country and channel. Use the country variable to compare a few "
            "countries. One country's sms line falling to the floor while others hold: route outage "
            "(alert OtpCountryDeliveryCollapse) — check the MCC table below to see whether one network or "
            "the whole country fails, and the daemon log for the provider's failure reasons.",
            [ts("{{country}} {{channel}}", ratio("otp_delivery_attempts_total", 'result="delivered"', "otp_delivery_attempts_total", F_ORDERS, "country, channel"))],
            "percentunit", w=12, h=9, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(max_=1, decimals=1)})
    d.panel("timeseries", "Conversion by country",
            "Verified ÷ finalized orders per country against the SLO line. A country far below the others "
            "with normal delivery success: users get codes late or not at all (check p95 latency in the "
            "table), or the sender id is filtered; with low delivery success: see the panel on the left.",
            [ts("{{country}}", ratio("otp_orders_total", 'outcome="verified"', "otp_orders_total", F_ORDERS, "country")), SLO_TARGET],
            "percentunit", w=12, h=9, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(max_=1, decimals=1), "overrides": [SLO_LINE_OVERRIDE]})
    d.panel("timeseries", "Fallback rate by country",
            "Channel fallbacks ÷ finalized orders per country (app and country filters). A country jumping "
            "up: its first channel (usually SMS) fails there and voice takes over — cost goes up too "
            "(alert OtpFallbackRateSpike).",
            [ts("{{country}}", "(sum by (country) (%s) or sum by (country) (%s) * 0) / sum by (country) (%s)" % (
                rate("otp_channel_fallbacks_total", F_APP_COUNTRY), rate("otp_orders_total", F_APP_COUNTRY), rate("otp_orders_total", F_APP_COUNTRY)))],
            "percentunit", w=12, h=9, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(min_=0, decimals=1)})
    d.panel("timeseries", "p95 delivery latency by country",
            "95th percentile of delivery latency per country and channel (no app filter: the histogram has "
            "no app_id). A country drifting above its peers: a slow route; raise it with the provider with "
            "the MCC from the table below.",
            [ts("{{country}} {{channel}}", "histogram_quantile(0.95, sum by (country, channel, le) (%s))" % rate("otp_delivery_latency_seconds_bucket", F_LATENCY))],
            "s", w=12, h=9, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(min_=0)})

    d.row("Mobile networks (MCC) and cost")
    mcc_by = "country, mcc"
    spend = "sum by (country, mcc) (increase(otp_cost_usd_total{%s}[%s]))" % (F_ORDERS, R)
    segs = "sum by (country, mcc) (increase(otp_sms_segments_total{%s}[%s]))" % (F_APP_COUNTRY, R)
    mdeliv = ratio("otp_delivery_attempts_total", 'result="delivered"', "otp_delivery_attempts_total", F_ORDERS, mcc_by, window=R, fn="increase")
    per_att = "sum by (country, mcc) (increase(otp_cost_usd_total{%s}[%s])) / sum by (country, mcc) (increase(otp_delivery_attempts_total{%s, result=\"delivered\"}[%s]))" % (F_ORDERS, R, F_ORDERS, R)
    mcols = [("A", "Spend", "currencyUSD", spend), ("B", "SMS segments", "short", segs),
             ("C", "Delivery success", "percentunit", mdeliv), ("D", "Cost per delivered attempt", "currencyUSD", per_att)]
    mover = []
    for ref, name, unit, _ in mcols:
        props = [{"id": "unit", "value": unit}]
        if name == "Delivery success":
            props += pct_color
        if "Cost" in name:
            props.append({"id": "decimals", "value": 4})
        if name == "Spend":
            props.append({"id": "decimals", "value": 2})
        mover.append(override_name(name, props))
    d.panel("table", "Per-MCC cost and delivery (time range)",
            "One row per country and MCC (mobile country code; `unknown` for voice calls whose country came "
            "from the calling code) over the selected range: spend, SMS billed segments, delivery success, "
            "spend per delivered attempt. Sorted by spend. An MCC whose spend grows while delivery success "
            "falls: paying for failed messages or pumped traffic — runbook OtpCostPerVerifiedJump. Segments "
            "far above attempts: the OTP template is too long or uses non-GSM characters (UCS-2 halves "
            "the segment size).",
            [inst(expr, fmt="table") | {"refId": ref} for ref, _, _, expr in mcols],
            "currencyUSD", w=12, h=10,
            options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""},
                     "sortBy": [{"displayName": "Spend", "desc": True}]},
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {"excludeByName": {"Time": True},
                                               "renameByName": {"country": "Country", "mcc": "MCC",
                                                                **{"Value #%s" % ref: name for ref, name, _, _ in mcols}}}},
            ],
            fieldConfig={"defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"}},
                                      "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]}},
                         "overrides": mover})
    d.panel("timeseries", "Spend per hour by MCC (top 10)",
            "USD per hour at the current pace for the ten most expensive country/MCC pairs. A pair that "
            "suddenly climbs without a matching rise in verified OTPs is the classic SMS-pumping signature "
            "(fraudulent sign-ups to premium-rate numbers): block the prefix in the issuing app and tell the "
            "provider.",
            [ts("{{country}} {{mcc}}", "topk(10, sum by (country, mcc) (%s) * 3600)" % rate("otp_cost_usd_total", F_ORDERS))],
            "currencyUSD", w=12, h=10, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(min_=0, decimals=2)})
    return d


# ---------------------------------------------------------------------------------------------
# Exporter internals.
# ---------------------------------------------------------------------------------------------
def internals():
    d = Dash("otp-exporter-internals", "OTP exporter internals",
             "Health of itnio-otp-exporter itself: tracked orders, spool input, ITNIO API queries. When "
             "the OTP dashboards look wrong, check here first that the numbers can be trusted.",
             ["otp", "itnio"],
             [var_datasource(), var_query("app_id", "App", "label_values(otp_exporter_orders_pending, app_id)",
                                          "ITNIO application id (apps[].id of the exporter's config).")])
    d.row("ITNIO API")
    d.panel("state-timeline", "API up per instance",
            "otp_exporter_api_up per exporter instance over time: green while the provider accepts our "
            "credentials and answers, red while it rejects the API key/secret (status -1) or this host's IP "
            "(status -2), or cannot be reached. Red: read the daemon log of that instance (it says which) "
            "and follow runbook OtpExporterApiDown.",
            [ts("{{instance}}", "max by (instance) (otp_exporter_api_up)")], "none", w=12, h=7,
            options={"mergeValues": True, "showValue": "never", "alignValue": "left", "rowHeight": 0.8,
                     "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                     "tooltip": {"mode": "single", "sort": "none"}},
            fieldConfig={"defaults": {
                "mappings": [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red", "index": 0},
                                                            "1": {"text": "UP", "color": "green", "index": 1}}}],
                "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]},
                "color": {"mode": "thresholds"}, "custom": {"fillOpacity": 80, "lineWidth": 0}}})
    d.panel("timeseries", "API error ratio",
            "Share of record queries whose answer was not status \"0\", per instance. Above 20% for 10 "
            "minutes raises OtpExporterApiErrorsHigh: the panel \"API requests by status\" tells which "
            "status dominates.",
            [ts("{{instance}}", '(sum by (instance) (rate(otp_exporter_api_requests_total{status!="0"}[$__rate_interval])) '
                'or sum by (instance) (rate(otp_exporter_api_requests_total[$__rate_interval])) * 0) '
                '/ sum by (instance) (rate(otp_exporter_api_requests_total[$__rate_interval]))')],
            "percentunit", w=12, h=7, options=TS_OPTIONS_BOTTOM,
            fieldConfig={"defaults": tsfield(min_=0, decimals=1, threshold_style="dashed", thresholds=[
                {"color": "green", "value": None}, {"color": "red", "value": 0.2}])})
    d.panel("timeseries", "API requests by status",
            "Record queries per second by answer, all instances, stacked. 0 = success; -1 account "
            "authentication error (API key/secret), -2 IP restricted (allow-list this host's egress IP), "
            "-16 timestamp expired (clock skew: the daemon corrects it from the Date header and logs it; "
            "fix NTP), -18 provider system error (retried), -22 parameter error (a bad order id or appId), "
            "http_NNN, timeout, connect_error, invalid_response: network or provider trouble. http_429: we "
            "exceed the provider's rate limit — lower api.max_requests_per_second.",
            [ts("{{status}}", "sum by (status) (rate(otp_exporter_api_requests_total[$__rate_interval]))")],
            "reqps", w=12, h=8, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(stack=True), "overrides": [
                override_name("0", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "green"}}])]})
    api = "sum by (le) (rate(otp_exporter_api_request_duration_seconds_bucket[$__rate_interval]))"
    d.panel("timeseries", "API request latency p50 / p95 / p99",
            "Duration of record queries (all instances). p99 approaching api.timeout (default 10s) turns into "
            "`timeout` errors and slower polling; if it persists, check the network path to the provider "
            "(proxy, DNS, TLS) and ask the provider.",
            [ts("p50", "histogram_quantile(0.5, %s)" % api), ts("p95", "histogram_quantile(0.95, %s)" % api),
             ts("p99", "histogram_quantile(0.99, %s)" % api)],
            "s", w=12, h=8, options=TS_OPTIONS_BOTTOM,
            fieldConfig={"defaults": tsfield(min_=0)})

    d.row("Tracked orders")
    d.panel("timeseries", "Orders pending per instance and app",
            "Orders being tracked. It follows traffic × (verification window + settle time). Growing while "
            "traffic is flat: polls do not keep up (api.max_requests_per_second / max_in_flight too low, "
            "API slow or failing) — runbook OtpExporterPendingBacklogGrowing; if one instance holds far more "
            "than the others, its spool shard gets more traffic.",
            [ts("{{instance}} {{app_id}}", 'sum by (instance, app_id) (otp_exporter_orders_pending{app_id=~"$app_id"})')],
            "short", w=12, h=8, options=TS_OPTIONS,
            fieldConfig={"defaults": tsfield(min_=0)})
    d.panel("timeseries", "Oldest pending order age",
            "Age of the oldest tracked order per instance. A sawtooth below tracking.max_age (default 30 min) "
            "is healthy. A line climbing past it (dashed 40 min line, alert OtpExporterOldestPendingTooOld): "
            "the API is unusable (see API up) or the scheduler is stuck — runbook.",
            [ts("{{instance}}", "max by (instance) (otp_exporter_oldest_pending_age_seconds)")],
            "s", w=12, h=8, options=TS_OPTIONS_BOTTOM,
            fieldConfig={"defaults": tsfield(min_=0, threshold_style="dashed", thresholds=[
                {"color": "green", "value": None}, {"color": "orange", "value": 1800}, {"color": "red", "value": 2400}])})
    d.panel("timeseries", "Finalized orders per instance",
            "Orders finalized per second per exporter instance: the throughput each instance handles. When "
            "sharding the spool, instances should carry comparable loads; one instance at zero while others "
            "work: its spool shard receives nothing, or it is stuck.",
            [ts("{{instance}}", "sum by (instance) (rate(otp_orders_total[$__rate_interval]))")],
            "cps", w=12, h=8, options=TS_OPTIONS_BOTTOM,
            fieldConfig={"defaults": tsfield(min_=0)})
    polls = "sum by (le) (rate(otp_exporter_polls_per_order_bucket[$__rate_interval]))"
    d.panel("timeseries", "Record queries per finalized order",
            "How many record queries each finalized order cost: mean, p50 and p95. It grows when the "
            "provider's delivery reports arrive late or the API errors (retries). A jump multiplies the API "
            "load: check API errors, and raise polling.first_delay if most orders are queried before their "
            "first delivery report.",
            [ts("mean", "sum (rate(otp_exporter_polls_per_order_sum[$__rate_interval])) / sum (rate(otp_exporter_polls_per_order_count[$__rate_interval]))"),
             ts("p50", "histogram_quantile(0.5, %s)" % polls), ts("p95", "histogram_quantile(0.95, %s)" % polls)],
            "short", w=12, h=8, options=TS_OPTIONS_BOTTOM,
            fieldConfig={"defaults": tsfield(min_=0, decimals=1)})

    d.row("Spool input and build")
    d.panel("timeseries", "Spool lines by result",
            "Order lines read from the spool per second: accepted, duplicate (already pending or finalized "
            "in the last 24 h), rejected (bad id, bad JSON, unknown appId, too long: moved to the spool's "
            "quarantine folder with the reason). Rejected lines are OTPs missing from every metric: fix the "
            "writing application (runbook OtpExporterSpoolRejects). Many duplicates: an application writes "
            "the same order id twice. Accepted at zero while OTPs are sent: the applications do not write "
            "into the spool, or into the wrong directory.",
            [ts("{{result}}", "sum by (result) (rate(otp_exporter_spool_lines_total[$__rate_interval]))")],
            "cps", w=12, h=8, options=TS_OPTIONS_BOTTOM,
            fieldConfig={"defaults": tsfield(stack=True), "overrides": [
                override_name("accepted", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "green"}}]),
                override_name("duplicate", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "yellow"}}]),
                override_name("rejected", [{"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}])]})
    d.panel("stat", "Versions running",
            "Exporter instances per version (otp_exporter_build_info). More than one version outside a "
            "rollout: an instance was not upgraded. No value at all: Prometheus scrapes no exporter "
            "(alert OtpExporterAbsent).",
            [inst("count by (version) (otp_exporter_build_info)", legend="{{version}}")], "short", w=12, h=8,
            options=dict(STAT_OPTIONS, graphMode="none", textMode="value_and_name"),
            fieldConfig={"defaults": {"color": {"mode": "fixed", "fixedColor": "blue"}}})
    return d


DASHBOARDS = [("otp-delivery-health.json", delivery_health), ("otp-regions.json", regions),
              ("otp-exporter-internals.json", internals)]


def render():
    files = {}
    queries = []
    for name, build in DASHBOARDS:
        dash = build().json()
        files[name] = json.dumps(dash, indent=2, ensure_ascii=False) + "\n"
        for p in dash["panels"]:
            for t in p.get("targets", []):
                queries.append({"dashboard": dash["uid"], "file": "dashboards/" + name, "panel_id": p["id"],
                                "panel": p["title"], "ref_id": t["refId"], "instant": bool(t.get("instant")),
                                "expr": t["expr"]})
    files["queries.jsonl"] = "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries)
    return files


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, text in render().items():
        path = os.path.join(HERE, name)
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current != text:
            if check:
                stale.append(name)
            else:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                print("wrote dashboards/%s" % name)
    if stale:
        print("dashboards/%s differ from dashboards/generate.py: run python3 dashboards/generate.py"
              % ", dashboards/".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
