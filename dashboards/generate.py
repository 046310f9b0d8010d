#!/usr/bin/env python3
"""Generates the Grafana dashboards of itnio-otp-exporter and the list of their queries.

    python3 -m pip install -r dashboards/requirements.txt   # Grafana's grafana-foundation-sdk, pinned
    python3 dashboards/generate.py           # rewrite dashboards/*.json and dashboards/queries.jsonl
    python3 dashboards/generate.py --check   # exit 1 if the committed files differ from this script

Exit status: 0 = files written or up to date, 1 = --check found stale files, 2 = the pinned SDK is
missing or another version is installed (never a silent skip: the output depends on the SDK).

The JSON files are what operators import (Grafana UI, provisioning, API). No Grafana runs here, so
they are built with Grafana's own typed builders (grafana-foundation-sdk, whose types follow the
dashboard schema) and, before anything is written, decoded back through the SDK's types to prove
that every field is one the schema knows. This script is their source, so that every panel
follows the same rules: datasource from the `datasource` variable, a unit, a description that
says what to do when the panel looks bad, `$__rate_interval` in rates.

queries.jsonl has one JSON object per panel query (dashboard uid, panel id and title, refId,
expr, instant or range): the live-Prometheus test substitutes the template variables and runs
each one. Variables used in expressions: $app_id, $channel, $country (regex matchers; "All" is
`.*`), $__rate_interval, $__range, $__interval. Grafana ignores the .jsonl file when it
provisions this folder.

Drill-down: every dashboard has a textbox variable `exporter_url` (default EXPORTER_URL_DEFAULT,
the daemon's default `listen`), the address at which the people using Grafana reach the
exporter's pages. Every per-country, per-operator (and per-app) panel carries data links to
`${exporter_url}/orders?<the clicked series' labels>&since=${__from}&until=${__to}`: Grafana
fills `${__field.labels.X}` from a time series' labels and `${__data.fields.X}` from a table
row's field X (by field name, which the organize transformation keeps), and `${__from}` /
`${__to}` with the time range in Unix milliseconds, which /orders accepts as since/until.
"""

import importlib.metadata
import json
import os
import sys
import typing

HERE = os.path.dirname(os.path.abspath(__file__))
SDK_DIST = "grafana-foundation-sdk"
INSTALL_HINT = "install it with: python3 -m pip install -r dashboards/requirements.txt"


def die(message):
    """Status 2: the generator cannot run or its output is not trustworthy (never a silent pass)."""
    print("dashboards/generate.py: " + message, file=sys.stderr)
    sys.exit(2)


def pinned_sdk_version():
    with open(os.path.join(HERE, "requirements.txt"), encoding="utf-8") as f:
        for line in f:
            name, sep, version = line.split("#", 1)[0].strip().partition("==")
            if sep and name.strip().lower().replace("_", "-") == SDK_DIST:
                return version.strip()
    die("dashboards/requirements.txt does not pin %s==VERSION" % SDK_DIST)


def require_sdk():
    """Stops with status 2 unless the pinned SDK is installed: another version writes other JSON."""
    pinned = pinned_sdk_version()
    try:
        installed = importlib.metadata.version(SDK_DIST)
    except importlib.metadata.PackageNotFoundError:
        die("needs %s==%s, which is not installed; %s" % (SDK_DIST, pinned, INSTALL_HINT))
    if installed != pinned:
        die("needs %s==%s, found %s; %s" % (SDK_DIST, pinned, installed, INSTALL_HINT))


require_sdk()

# Imported only once require_sdk() vouched for the version.
from grafana_foundation_sdk.builders import common as cb  # noqa: E402
from grafana_foundation_sdk.builders import dashboard as db  # noqa: E402
from grafana_foundation_sdk.builders import geomap, prometheus, stat, statetimeline, table, timeseries  # noqa: E402
from grafana_foundation_sdk.cog import builder as cogbuilder  # noqa: E402
from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: E402
from grafana_foundation_sdk.cog.plugins import register_default_plugins  # noqa: E402
from grafana_foundation_sdk.models import common as cm  # noqa: E402
from grafana_foundation_sdk.models import dashboard as dm  # noqa: E402
from grafana_foundation_sdk.models import geomap as gm  # noqa: E402
from grafana_foundation_sdk.models import prometheus as pm  # noqa: E402

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
REF_IDS = "ABCDEFGHIJ"

# The exporter's pages, for the data links: the daemon's default `listen` seen from the same host.
EXPORTER_URL_DEFAULT = "http://localhost:8467"
# Filters /orders (and /api/v1/orders, /api/v1/breakdown) accept, named like the metric labels.
ORDERS_FILTERS = ("app_id", "country", "mcc", "mnc", "operator", "channel", "outcome", "state")
TIME_RANGE = "since=${__from}&until=${__to}"  # Unix ms, as /orders accepts them

# ---------------------------------------------------------------------------------------------
# PromQL pieces.
# ---------------------------------------------------------------------------------------------
# Label filters built from the template variables.
F_ORDERS = 'app_id=~"$app_id", channel=~"$channel", country=~"$country"'  # orders, attempts, cost, verification latency
F_APP_COUNTRY = 'app_id=~"$app_id", country=~"$country"'  # fallbacks, SMS segments
F_LATENCY = 'channel=~"$channel", country=~"$country"'  # delivery latency (no app_id label)
RI = "$__rate_interval"
R = "$__range"


def rate(metric, selector, window=RI, fn="rate"):
    """rate(metric{selector}[window]), or increase(...) with fn="increase"."""
    return "%s(%s{%s}[%s])" % (fn, metric, selector, window)


def ratio(num_metric, num_extra, den_metric, selector, by, window=RI, fn="rate"):
    """sum(num) / sum(den) with 0 (not a gap) where the numerator never had a series."""
    by_clause = "sum by (%s) " % by if by else "sum "
    den = "%s(%s)" % (by_clause, rate(den_metric, selector, window, fn))
    num = "%s(%s)" % (by_clause, rate(num_metric, "%s, %s" % (selector, num_extra), window, fn))
    return "(%s or %s * 0) / %s" % (num, den, den)


def verified_ratio(by, window=RI, fn="rate"):
    return ratio("otp_orders_total", 'outcome="verified"', "otp_orders_total", F_ORDERS, by, window, fn)


def delivered_ratio(by, window=RI, fn="rate"):
    return ratio("otp_delivery_attempts_total", 'result="delivered"', "otp_delivery_attempts_total", F_ORDERS, by,
                 window, fn)


def fallback_ratio(by, window=RI, fn="rate"):
    """Fallbacks ÷ orders (0 where no fallback happened), filtered by app and country only;
    `by` is "" or a grouping such as "by (country) "."""
    fallbacks = "sum %s(%s)" % (by, rate("otp_channel_fallbacks_total", F_APP_COUNTRY, window, fn))
    orders = "sum %s(%s)" % (by, rate("otp_orders_total", F_APP_COUNTRY, window, fn))
    return "(%s or %s * 0) / %s" % (fallbacks, orders, orders)


def spend_per(by, metric, matcher):
    """Spend ÷ the matching events of `metric` over the time range, per `by`."""
    return "sum by (%s) (%s) / sum by (%s) (%s)" % (
        by, rate("otp_cost_usd_total", F_ORDERS, R, "increase"), by,
        rate(metric, "%s, %s" % (F_ORDERS, matcher), R, "increase"))


# ---------------------------------------------------------------------------------------------
# Queries, field settings and panel shapes, all SDK builders.
# ---------------------------------------------------------------------------------------------
def series(legend, expr):
    """A range query (time series)."""
    return (prometheus.Dataquery().expr(expr).legend_format(legend).editor_mode(pm.QueryEditorMode.CODE)
            .range())


def instant(expr, legend="__auto"):
    return (prometheus.Dataquery().expr(expr).legend_format(legend).editor_mode(pm.QueryEditorMode.CODE)
            .instant())


def quantiles(legend_prefix, buckets, qs):
    """One histogram_quantile series per q, legends "<prefix>p50", "<prefix>p95", ..."""
    return [series("%sp%d" % (legend_prefix, round(q * 100)), "histogram_quantile(%s, %s)" % (q, buckets)) for q in qs]


def channel_quantiles(histogram, selector, qs):
    return quantiles("{{channel}} ", "sum by (channel, le) (%s)" % rate(histogram, selector), qs)


def table_query(expr, legend="__auto"):
    """An instant query whose result is a table row per series (for the merge transformation)."""
    return instant(expr, legend).format(pm.PromQueryFormat.TABLE)


def thresholds(*steps):
    """thresholds("red", (0.5, "orange"), (0.8, "green")): the base colour, then (from, colour) steps."""
    base, rest = steps[0], steps[1:]
    return (db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(None, base)] + [dm.Threshold(value, color) for value, color in rest]))


def fixed_color(color):
    return db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color(color)


def by_thresholds():
    return db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS)


def prop(prop_id, value):
    return dm.DynamicConfigValue(id_val=prop_id, value=value)


def color_prop(color):
    return prop("color", dm.FieldColor(mode=dm.FieldColorModeId.FIXED, fixed_color=color))


def color_cells(*steps):
    """Override properties: table cells coloured by the given thresholds."""
    background = cm.TableColoredBackgroundCellOptions(mode=cm.TableCellBackgroundDisplayMode.BASIC)
    return [prop("custom.cellOptions", background), prop("thresholds", thresholds(*steps).build())]


def with_colors(panel, colors):
    """One fixed colour per series name: {"verified": "green", ...}."""
    for name, color in colors.items():
        panel.override_by_name(name, [color_prop(color)])
    return panel


def legend(table_right):
    """Table on the right with mean and last value, or a plain list below the graph."""
    if table_right:
        return (cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE).placement(cm.LegendPlacement.RIGHT)
                .calcs(["mean", "lastNotNull"]).show_legend(True))
    return (cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST).placement(cm.LegendPlacement.BOTTOM)
            .calcs([]).show_legend(True))


def ts_panel(table_legend=True, min_val=None, max_val=None, stack=False, decimals=None, steps=None,
             threshold_style=cm.GraphThresholdsStyleMode.OFF):
    """A time series panel; without a minimum the axis starts softly at 0."""
    p = (timeseries.Panel()
         .draw_style(cm.GraphDrawStyle.LINE).line_width(1).fill_opacity(60 if stack else 10)
         .show_points(cm.VisibilityMode.NEVER).span_nulls(False)
         .stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL if stack else cm.StackingMode.NONE).group("A"))
         .thresholds_style(cb.GraphThresholdsStyleConfig().mode(threshold_style))
         .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC))
         .legend(legend(table_legend))
         .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)))
    if min_val is None:
        p.axis_soft_min(0)
    else:
        p.min(min_val)
    if max_val is not None:
        p.max(max_val)
    if decimals is not None:
        p.decimals(decimals)
    if steps:
        p.thresholds(thresholds(*steps))
    return p


def ratio_panel(table_legend=True, **kw):
    """A time series of a 0..1 ratio, one decimal."""
    return ts_panel(table_legend, max_val=1, decimals=1, **kw)


def slo_panel(table_legend=True):
    """A ratio panel whose "SLO target" series is a dashed red line."""
    return ratio_panel(table_legend).override_by_name("SLO target", [
        color_prop("red"),
        prop("custom.lineStyle", cm.LineStyle(fill="dash", dash=[10, 10])),
        prop("custom.fillOpacity", 0),
        prop("custom.lineWidth", 2),
    ])


SLO_TARGET = ("SLO target", "otp:slo_target:ratio")


def stat_panel(graph_mode=cm.BigValueGraphMode.AREA, color_mode=cm.BigValueColorMode.VALUE,
               text_mode=cm.BigValueTextMode.AUTO):
    return (stat.Panel()
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
            .color_mode(color_mode).graph_mode(graph_mode).justify_mode(cm.BigValueJustifyMode.AUTO)
            .orientation(cm.VizOrientation.AUTO).text_mode(text_mode).wide_layout(True).show_percent_change(False))


def up_down(panel):
    """0 reads DOWN in red, 1 UP in green (otp_exporter_api_up)."""
    return (panel
            .mappings([dm.ValueMap(options={"0": dm.ValueMappingResult(text="DOWN", color="red", index=0),
                                            "1": dm.ValueMappingResult(text="UP", color="green", index=1)})])
            .thresholds(thresholds("red", (1, "green"))).color_scheme(by_thresholds()))


def table_panel(sort_by, desc):
    return (table.Panel()
            .show_header(True).cell_height(cm.TableCellHeight.SM)
            .footer(cb.TableFooterOptions().show(False).reducer(["sum"]))
            .sort_by([cb.TableSortByFieldState().display_name(sort_by).desc(desc)])
            .align(cm.FieldTextAlignment.AUTO).cell_options(cm.TableAutoCellOptions()).inspect(False)
            .thresholds(thresholds("green")))


def merge():
    return dm.DataTransformerConfig(id_val="merge", options={})


def organize(rename, order=None):
    """Hides the Time column, renames the others (and orders them)."""
    options = {"excludeByName": {"Time": True}, "renameByName": rename}
    if order is not None:
        options["indexByName"] = order
    return dm.DataTransformerConfig(id_val="organize", options=options)


def exporter_url_variable():
    """Where the people using Grafana reach the exporter (its /orders pages), for the data links."""
    return (db.TextBoxVariable("exporter_url").label("Exporter URL").default_value(EXPORTER_URL_DEFAULT)
            .current(dm.VariableOption(selected=True, text=EXPORTER_URL_DEFAULT, value=EXPORTER_URL_DEFAULT))
            .options([dm.VariableOption(selected=True, text=EXPORTER_URL_DEFAULT, value=EXPORTER_URL_DEFAULT)])
            .description("Base URL of itnio-otp-exporter's own pages (scheme, host, port of its `listen`, no "
                         "trailing slash) as your browser reaches it, e.g. %s or "
                         "https://otp-exporter.example.net. The panels' data links open "
                         "<this URL>/orders filtered by the clicked series." % EXPORTER_URL_DEFAULT)
            .hide(dm.VariableHide.DONT_HIDE))


def drill_link(title, path, labels, source, fixed=()):
    """A data link to the exporter's `path` filtered by the clicked series' `labels` (source "field":
    a time series' labels; "data": a table row's fields) and fixed filters, over the time range."""
    ref = {"field": "${__field.labels.%s}", "data": "${__data.fields.%s}"}[source]
    for name in [*labels, *(k for k, _ in fixed)]:
        if name not in ORDERS_FILTERS + ("by",):
            raise ValueError("data link filter %r is not one /orders accepts" % name)
    by = [(k, v) for k, v in fixed if k == "by"]
    params = (["%s=%s" % kv for kv in by] + ["%s=%s" % (label, ref % label) for label in labels]
              + ["%s=%s" % kv for kv in fixed if kv not in by])
    return (db.DashboardLink(title).type(dm.DashboardLinkType.LINK)
            .url("${exporter_url}%s?%s" % (path, "&".join(params + [TIME_RANGE]))).target_blank(True))


def orders_links(labels, source="field", failed=True):
    """"Orders" (and "Undelivered orders") of the clicked series on the exporter's /orders page."""
    what = ", ".join(labels)
    links = [drill_link("Orders of this %s (exporter)" % what, "/orders", labels, source)]
    if failed:
        links.append(drill_link("Undelivered orders of this %s (exporter)" % what, "/orders", labels, source,
                                (("state", "final"), ("outcome", "undelivered"))))
    return links


NO_LINKS = [prop("links", [])]  # override for a series without the labels (the SLO target line)


class Column(typing.NamedTuple):
    """One column of a per-label table: one instant query, its unit and extra override properties."""
    name: str
    unit: str
    expr: str
    props: tuple = ()


def column_table(cols, labels, sort_by, desc, ordered=False):
    """A table with one row per label set and one column per query, merged on the labels.
    Returns the panel and its queries (refIds A, B, ... in column order)."""
    refs = ["Value #%s" % ref for ref in REF_IDS[:len(cols)]]
    rename = dict(labels, **{ref: c.name for ref, c in zip(refs, cols)})
    order = dict({label: i for i, label in enumerate(labels)}, **{ref: len(labels) + i for i, ref in enumerate(refs)})
    p = table_panel(sort_by, desc).transformations([merge(), organize(rename, order if ordered else None)])
    for c in cols:
        p.override_by_name(c.name, [prop("unit", c.unit), *c.props])
    return p, [table_query(c.expr) for c in cols]


class AlertAnnotation(cogbuilder.Builder[dm.AnnotationQuery]):
    """Firing OTP alerts as annotations.

    The SDK's AnnotationQuery has no fields for what Grafana's Prometheus plugin reads from a
    Prometheus annotation (step, title/text templates, tag keys), so this extends its type, as the
    SDK's README does for custom queries, instead of dropping them."""

    class Query(dm.AnnotationQuery):
        EXTRA = {"step": "60s", "titleFormat": "{{alertname}}",
                 "textFormat": "{{app_id}} {{channel}} {{country}} {{instance}}", "tagKeys": "severity",
                 "useValueForTime": False}

        def to_json(self):
            return dict(super().to_json(), **self.EXTRA)

    def build(self):
        return self.Query(name="OTP alerts", datasource=DS, enable=True, hide=False, icon_color="red",
                          expr='ALERTS{alertname=~"Otp.*", alertstate="firing"}')


def datasource_variable():
    return (db.DatasourceVariable("datasource").label("Data source").type("prometheus").hide(dm.VariableHide.DONT_HIDE)
            .include_all(False).multi(False).regex(""))


def query_variable(name, label, query, description):
    """A multi-value variable of label values; "All" matches everything (`.*`)."""
    return (db.QueryVariable(name).label(label).datasource(DS).query(query).description(description)
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
            .hide(dm.VariableHide.DONT_HIDE).include_all(True).all_value(".*").multi(True).options([])
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).regex("").sort(dm.VariableSort.ALPHABETICAL_ASC))


def app_variable(metric):
    return query_variable("app_id", "App", "label_values(%s, app_id)" % metric,
                          "ITNIO application id (apps[].id of the exporter's config).")


def otp_variables():
    return [
        datasource_variable(),
        app_variable("otp_orders_total"),
        query_variable("channel", "Channel", 'label_values(otp_orders_total{app_id=~"$app_id"}, channel)',
                       "sms, call, sna, or none (orders without any attempt)."),
        query_variable("country", "Country", 'label_values(otp_orders_total{app_id=~"$app_id"}, country)',
                       "ISO 3166 alpha-2 country of the order's first attempt (unknown when unresolvable)."),
    ]


EXPORTER_URL_NOTE = (
    " Drill-down: the data links of per-country, per-operator and per-app panels (and the \"Orders "
    "(exporter)\" link at the top) open the exporter's /orders page filtered by the clicked series and "
    "the time range, at the address in the variable `exporter_url` (textbox, default %s): set it to "
    "the exporter's address as your browser reaches it." % EXPORTER_URL_DEFAULT)


class Board:
    """A dashboard in the making: numbers panels and rows in order (ids are stable for links)."""

    def __init__(self, uid, title, description, variables):
        self.builder = (
            db.Dashboard(title).uid(uid).description(description + EXPORTER_URL_NOTE).tags(["otp", "itnio"])
            .editable().tooltip(dm.DashboardCursorSync.CROSSHAIR).version(1).refresh("30s")
            .time("now-6h", "now").timezone("").fiscal_year_start_month(0).live_now(False).week_start("")
            .link(db.DashboardLink("OTP dashboards").type(dm.DashboardLinkType.DASHBOARDS).tags(["otp"])
                  .as_dropdown(True).include_vars(True).keep_time(True).icon("external link")
                  .target_blank(False).tooltip("").url(""))
            .link(db.DashboardLink("Orders (exporter)").type(dm.DashboardLinkType.LINK)
                  .url("${exporter_url}/orders?" + TIME_RANGE).icon("external link").target_blank(True)
                  .tooltip("The exporter's orders of the time range (variable exporter_url)")
                  .as_dropdown(False).include_vars(False).keep_time(False).tags([]))
            .annotation(AlertAnnotation())
            .variables(variables + [exporter_url_variable()]))
        self.next_id = 1
        self.line_width = 0  # grid columns used on the current line

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def row(self, title):
        self.builder.with_row(db.Row(title).id(self._id()))
        self.line_width = 0

    def add(self, panel, title, description, unit, queries, w, h, links=None):
        """Places the panel after the previous one. The SDK starts a new line only once 24 columns
        are used, so a panel that does not fit the rest of a line would overflow it: refused here.
        `links`: the panel's data links (orders_links, drill_link)."""
        if self.line_width + w > 24:
            raise ValueError("panel %r (width %d) does not fit the %d columns left on its line"
                             % (title, w, 24 - self.line_width))
        self.line_width = (self.line_width + w) % 24
        if len(queries) > len(REF_IDS):
            raise ValueError("panel %r has more queries than refIds" % title)
        panel.id(self._id()).title(title).description(description).datasource(DS).unit(unit).span(w).height(h)
        if links:
            panel.data_links(links)
        for ref, query in zip(REF_IDS, queries):
            panel.with_target(query.ref_id(ref).datasource(DS))
        self.builder.with_panel(panel)

    def build(self):
        return self.builder.build()


# ---------------------------------------------------------------------------------------------
# Early signals (issue 9): facts counted when a poll first sees them, seconds after they happen,
# where the outcome metrics above wait for the order's verification window to close.
# ---------------------------------------------------------------------------------------------
RESULT_COLORS = {"delivered": "green", "failed": "red"}
STAGE_COLORS = {"delivery": "orange", "verification": "purple"}


def early_signals(d, by):
    """The "Early signals" row: delivery reports, sent and verified orders, overdue orders per
    second, and the early delivery success; `by` is "" (totals) or a label list such as "country"."""
    group = lambda extra: "sum by (%s) " % ", ".join(x for x in (by, extra) if x) if by or extra else "sum "
    legend = lambda extra: " ".join("{{%s}}" % x for x in (by, extra) if x) if by or extra else None
    per = " per %s" % by if by else ""
    links = orders_links([by]) if by else None
    d.row("Early signals (seconds after the facts)")
    d.add(with_colors(ts_panel(table_legend=bool(by), stack=not by), {} if by else RESULT_COLORS),
          "Delivery reports per second%s (delivered / failed)" % per,
          "Attempt delivery reports (otp_attempt_results_total) counted the first time a poll shows "
          "them, seconds after the provider has them, long before the order is finalized. Failed "
          "rising while delivered falls: a route is failing now (alert OtpCountryDeliveryCollapse "
          "pages on this) — set the country variable, read the per-MCC table and the daemon log. Both "
          "falling to zero while orders are still sent: messages vanish without a report (silent "
          "outage: see overdue orders).",
          "cps", [series(legend("result"), "%s(%s)" % (group("result"), rate("otp_attempt_results_total", F_ORDERS)))],
          w=12, h=8, links=links)
    d.add(ts_panel(table_legend=bool(by)),
          "Sent and verified orders per second%s" % per,
          "Orders first seen sent (their first attempt, by its channel) and first seen verified. The "
          "gap between the two is the share of users who never enter the code (25-45% is usual). "
          "Verified falling while sent holds: users stop getting or using codes in the selection "
          "(alert OtpCountryConversionCollapse); both falling: less traffic, or the exporter is late "
          "(Exporter internals, poll delay).",
          "cps", [series(("sent " + legend("")) if by else "sent",
                         "%s(%s)" % (group(""), rate("otp_orders_sent_total", F_ORDERS))),
                  series(("verified " + legend("")) if by else "verified",
                         "%s(%s)" % (group(""), rate("otp_verifications_total", F_ORDERS)))],
          w=12, h=8, links=links)
    d.add(with_colors(ts_panel(table_legend=bool(by)), {} if by else STAGE_COLORS),
          "Overdue orders per second%s by stage" % per,
          "Orders whose delivery report (stage delivery) or verification (stage verification) is later "
          "than the 90th percentile of recent history for their app, country and channel, counted once "
          "each. Calm: ~10-15% of sent orders overdue for delivery, ~35-45% for verification (users who "
          "never type the code). Delivery-overdue jumping in one country while no failed reports "
          "come: a silent outage (alert OtpCountrySilentOutage) — check the per-MCC table and tell "
          "the provider.",
          "cps", [series(legend("stage"), "%s(%s)" % (group("stage"), rate("otp_orders_overdue_total", F_ORDERS)))],
          w=12, h=8, links=links)
    d.add(ratio_panel(table_legend=bool(by)),
          "Early delivery success per %s" % ("%s and channel" % by if by else "channel"),
          "Delivered ÷ delivery reports seen in the last minutes, per channel (a pending attempt is in "
          "neither). It moves within seconds of a route failing, where \"Delivery success\" on finalized "
          "orders moves minutes later. A line that is always low (SNA where it is not supported) is that "
          "route's normal; a line that falls from its own normal is an incident.",
          "percentunit", [series(legend("channel"), ratio("otp_attempt_results_total", 'result="delivered"',
                                                         "otp_attempt_results_total", F_ORDERS,
                                                         ", ".join(x for x in (by, "channel") if x)))],
          w=12, h=8, links=orders_links([by, "channel"]) if by else None)


# ---------------------------------------------------------------------------------------------
# The ITNIO account's money (issue 12), from the recording rules of rules.yml (group otp-account):
# the newest balance reading per kind, spend averaged over 1h and 24h, the time to empty. One
# account per Prometheus, as those rules assume; the app, channel and country variables do not
# apply (the money is the whole account's).
# ---------------------------------------------------------------------------------------------
TIME_TO_EMPTY_STEPS = ("red", (3, "orange"), (24, "green"))  # hours: the two alerts' thresholds
TIME_TO_EMPTY_CAP_HOURS = 168  # the graph stops at a week, so that 3 h and 24 h stay readable


def account(d):
    """The "Account" row: funds, time to empty, balance reading age, lock; funds by kind, spend
    per hour and time to empty over time."""
    d.row("Account")
    d.add(stat_panel().decimals(2).color_scheme(fixed_color("blue")).no_value("no reading"),
          "Funds left (USD)",
          "Balance + gift + credit of the ITNIO account, as the exporters' balance poller last read it "
          "(the newest reading; every account.balance_interval, default 5 min). Not filtered by app, "
          "channel or country: it is the whole account's money. Low: see \"Time to empty\" and have the "
          "account owner or finance top up in the ITNIO console (runbook OtpAccountRunsOutWithin3h). "
          "\"no reading\": the balance poller is disabled or has never succeeded.",
          "currencyUSD", [instant("otp:account_balance_usd:sum")], w=6, h=5)
    d.add(stat_panel(graph_mode=cm.BigValueGraphMode.NONE).decimals(1)
          .thresholds(thresholds(*TIME_TO_EMPTY_STEPS)).color_scheme(by_thresholds())
          .no_value("no spend or no reading"),
          "Time to empty",
          "Hours until the funds are gone at the current pace: funds ÷ the higher of the last hour's and "
          "the last 24 hours' spend (recording rule otp:account_time_to_empty:seconds). Orange below 24 h "
          "(alert OtpAccountRunsOutWithin24h: top up today), red below 3 h (OtpAccountRunsOutWithin3h: "
          "top up now; if spend jumped, rule out SMS pumping first). 0: the money is gone and every send "
          "fails (status -10).",
          "h", [instant("otp:account_time_to_empty:seconds / 3600")], w=6, h=5)
    d.add(stat_panel(graph_mode=cm.BigValueGraphMode.NONE).thresholds(thresholds("green", (900, "orange")))
          .color_scheme(by_thresholds()).no_value("no reading"),
          "Balance reading age",
          "Age of the newest successful balance query of all exporters. It should stay below "
          "account.balance_interval (default 5 min); orange from 15 min, when OtpAccountBalanceStale "
          "fires for exporters whose poller fails: the funds and time to empty shown here are that old. "
          "Read the balance in the ITNIO console meanwhile, and see the runbook for the query's status.",
          "s", [instant("time() - max (otp_account_balance_last_success_timestamp_seconds > 0)")], w=6, h=5)
    d.add(stat_panel(graph_mode=cm.BigValueGraphMode.NONE, color_mode=cm.BigValueColorMode.BACKGROUND)
          .mappings([dm.ValueMap(options={"0": dm.ValueMappingResult(text="OK", color="green", index=0),
                                          "1": dm.ValueMappingResult(text="LOCKED", color="red", index=1)})])
          .thresholds(thresholds("green", (1, "red"))).color_scheme(by_thresholds()).no_value("no reading"),
          "ITNIO account locked",
          "LOCKED while the provider answers the balance query of any exporter with status -13 (user "
          "locked): ITNIO has locked the account and sends are likely to fail everywhere (alert "
          "OtpAccountLocked). Only ITNIO can unlock it: the account owner contacts ITNIO support.",
          "none", [instant("max (otp_account_locked)")], w=6, h=5)
    d.add(ts_panel(table_legend=False, decimals=2),
          "Funds by kind (USD)",
          "The account's balance, gift and credit (newest reading per kind, recording rule "
          "kind:otp_account_balance_usd:latest) and their total. The total falls with the spend and "
          "jumps at a top-up. Falling faster than the spend on this dashboard: something else spends on "
          "the same account (SMS sent outside the tracked OTPs).",
          "currencyUSD", [series("{{kind}}", "kind:otp_account_balance_usd:latest"),
                          series("total", "otp:account_balance_usd:sum")], w=8, h=8)
    d.add(ts_panel(table_legend=False, min_val=0, decimals=2),
          "Account spend per hour (USD)",
          "Spend of every app, channel and country per hour, averaged over the last hour and over the "
          "last 24 hours (recording rules otp:cost_usd:rate1h and rate24h × 3600); the time to empty "
          "uses the higher. The last hour far above the day: a surge — more traffic, voice fallbacks, or "
          "SMS pumping (per-MCC spend on the Regions dashboard, runbook OtpCostPerVerifiedJump).",
          "currencyUSD", [series("last hour", "otp:cost_usd:rate1h * 3600"),
                          series("last 24 hours", "otp:cost_usd:rate24h * 3600")], w=8, h=8)
    d.add(ts_panel(table_legend=False, min_val=0, decimals=1, threshold_style=cm.GraphThresholdsStyleMode.DASHED,
                   steps=TIME_TO_EMPTY_STEPS),
          "Time to empty (hours)",
          "Hours until the funds are gone at the higher of the 1h and 24h spend, drawn up to %d h (a week), "
          "with the alert thresholds dashed: 24 h (warning, top up today) and 3 h (page, top up now). No "
          "line: no spend, or no balance reading." % TIME_TO_EMPTY_CAP_HOURS,
          "h", [series("time to empty", "clamp_max(otp:account_time_to_empty:seconds / 3600, %d)"
                       % TIME_TO_EMPTY_CAP_HOURS)], w=8, h=8)


# ---------------------------------------------------------------------------------------------
# OTP delivery health: the on-call front page.
# ---------------------------------------------------------------------------------------------
OUTCOME_COLORS = {"verified": "green", "undelivered": "red", "unverified": "yellow", "expired": "purple",
                  "not_found": "blue", "failed": "orange"}
OLDEST_PENDING_STEPS = ("green", (1800, "orange"), (2400, "red"))


def delivery_health():
    d = Board("otp-delivery-health", "OTP delivery health",
              "On-call front page of itnio-otp-exporter: are OTPs verified (against the SLO), delivered, "
              "fast and affordable, is there money left on the ITNIO account, and is the exporter itself healthy. "
              "Runbooks: docs/runbooks.md.",
              otp_variables())
    verified_ratio_range = verified_ratio(None, window=R, fn="increase")

    d.row("Verification (conversion) against the SLO")
    d.add(stat_panel().decimals(2).color_scheme(fixed_color("blue")),
          "Verification rate (time range)",
          "Verified ÷ finalized orders over the selected time range, for the selected apps, channels "
          "and countries. If it is low: look at \"Margin to SLO\" and \"Outcomes over time\" to see "
          "since when and which outcome grew, then open the Regions dashboard to find the country.",
          "percentunit", [instant(verified_ratio_range)], w=4, h=6)
    d.add(stat_panel().decimals(2).thresholds(thresholds("red", (0, "green"))).color_scheme(by_thresholds()),
          "Margin to SLO (time range)",
          "Verification rate over the selected range minus the SLO target (recording rule "
          "otp:slo_target:ratio, the one place the SLO lives). Red (negative) means the selection "
          "converts worse than the SLO: check the burn-rate panel to see how fast the error budget goes, "
          "then the delivery success per channel below.",
          "percentunit", [instant("(%s) - on () group_left () otp:slo_target:ratio" % verified_ratio_range)], w=4, h=6)
    d.add(slo_panel(table_legend=False),
          "Verification rate vs SLO",
          "Verified ÷ finalized orders of the selection (solid) against the SLO target (dashed red). "
          "A drop below the line: if it is sudden and deep, page-level (see alerts "
          "OtpVerificationSLOFastBurn / OtpVerificationCollapsed); compare with \"Delivery success rate per "
          "channel\" — if delivery fell too, the provider or a route is failing; if delivery is fine but "
          "conversion fell, users do not enter the codes (app release, expired codes, latency).",
          "percentunit", [series("verification rate", verified_ratio(None)), series(*SLO_TARGET)], w=16, h=6)
    d.add(slo_panel().override_by_name("SLO target", NO_LINKS),
          "Verification rate per app and channel",
          "Verified ÷ finalized orders per app and per channel (the verification's channel, else the "
          "last attempt's, `none` for orders never sent) against the SLO line. One line far below the "
          "others tells where to look: one app (its integration, its sender id) or one channel (SMS "
          "routes vs voice). `none` at 0% is normal; a growing volume of `none` is not (orders never sent).",
          "percentunit", [series("{{app_id}} {{channel}}", verified_ratio("app_id, channel")), series(*SLO_TARGET)],
          w=12, h=9, links=orders_links(["app_id", "channel"]))
    burn = ('app:otp_verification_errors:ratio_rate%s{app_id=~"$app_id"}'
            " / on () group_left () otp:slo_error_budget:ratio")
    d.add(ts_panel(min_val=0, decimals=2, threshold_style=cm.GraphThresholdsStyleMode.DASHED,
                   steps=("green", (1, "yellow"), (6, "orange"), (14.4, "red"))),
          "Error-budget burn rate (recorded 1h / 6h / 3d)",
          "How many times faster than allowed the error budget (1 − SLO) burns, per app, from the recording "
          "rules app:otp_verification_errors:ratio_rate1h/6h/3d ÷ otp:slo_error_budget:ratio. Paging "
          "thresholds: 14.4× (1h, with 5m), 6× (6h, with 30m); ticket: 1× (3d, with 6h). Above 14.4×: "
          "incident, follow the runbook OtpVerificationSLOFastBurn. Only the app filter applies here.",
          "suffix:×", [series("{{app_id}} %s" % window, burn % window) for window in ("1h", "6h", "3d")], w=12, h=9)

    d.row("Outcomes")
    d.add(with_colors(ts_panel(stack=True), OUTCOME_COLORS),
          "Outcomes over time (stacked)",
          "Finalized orders per second by outcome: verified, unverified (delivered, never entered), "
          "undelivered (every attempt failed), failed (wrong code), not_found (the provider has no record: "
          "the order id written to the spool does not match the one sent), expired (undecidable at "
          "tracking.max_age: API unreachable or attempts stuck pending). A growing band other than "
          "verified names the problem: undelivered → routes (Regions dashboard), unverified → users/app, "
          "not_found → the issuing app's spool integration, expired → exporter/API (Exporter internals).",
          "cps", [series("{{outcome}}", "sum by (outcome) (%s)" % rate("otp_orders_total", F_ORDERS))], w=24, h=8,
          links=[drill_link("Orders with this outcome (exporter)", "/orders", ["outcome"], "field", (("state", "final"),))])

    d.row("Delivery and fallback")
    d.add(ratio_panel(table_legend=False),
          "Delivery success rate per channel",
          "Delivered ÷ all attempts of finalized orders, per channel (an attempt still pending when its "
          "order was finalized counts as not delivered). SMS dropping while call holds: SMS routes fail "
          "and voice fallback rescues users at a higher cost — find the country and MCC on the Regions "
          "dashboard. Every channel dropping at once: provider-wide incident; check the provider status "
          "and the exporter's API errors.",
          "percentunit", [series("{{channel}}", delivered_ratio("channel"))], w=8, h=8)
    d.add(ts_panel(table_legend=False, min_val=0, decimals=1),
          "Fallback rate (fallbacks ÷ orders)",
          "Channel switches inside an order (e.g. sms→call) per finalized order, total and per "
          "from→to pair. Filtered by app and country only (a fallback has two channels). A spike means "
          "the first channel fails somewhere (alert OtpFallbackRateSpike): open Regions, sort the table "
          "by fallback rate, then check SMS delivery per MCC of the top country.",
          "percentunit",
          [series("all fallbacks", fallback_ratio("")),
           series("{{from}}→{{to}}", "sum by (from, to) (%s) / on () group_left () sum (%s)" % (
               rate("otp_channel_fallbacks_total", F_APP_COUNTRY), rate("otp_orders_total", F_APP_COUNTRY)))],
          w=8, h=8)
    sms_call = rate("otp_channel_fallbacks_total", F_APP_COUNTRY + ', from="sms", to="call"')
    d.add(ts_panel(table_legend=False, min_val=0, max_val=1, decimals=1),
          "SMS→call conversion after fallback",
          "Orders verified by voice call ÷ sms→call fallbacks (capped at 100%): how well the voice "
          "fallback rescues users whose SMS failed. Low values while the fallback rate is high: the "
          "voice route of that country fails too, or users miss the call — check call delivery success "
          "on the Regions dashboard. Filtered by app and country.",
          "percentunit",
          [series("sms→call → verified", "clamp_max((sum (%s) or sum (%s) * 0) / sum (%s), 1)" % (
              rate("otp_orders_total", F_APP_COUNTRY + ', channel="call", outcome="verified"'), sms_call, sms_call))],
          w=8, h=8)

    d.row("Latency")
    d.add(ts_panel(min_val=0),
          "Delivery latency p50 / p95 / p99 per channel",
          "Time from submit to delivery of delivered attempts (SMS submit→DLR, call submit→answer, "
          "SNA request→result), quantiles per channel. The app filter does not apply (the histogram has "
          "no app_id). p95 above its threshold (sms 30s, call 60s, sna 10s: alert OtpDeliveryLatencyHigh) "
          "makes codes expire: find the slow countries in the Regions table (p95 column) and raise it "
          "with the provider.",
          "s", channel_quantiles("otp_delivery_latency_seconds_bucket", F_LATENCY, (0.5, 0.95, 0.99)), w=12, h=8)
    d.add(ts_panel(min_val=0),
          "Time to verify p50 / p95 per channel",
          "Verified orders: first attempt's submit → verification, per verification channel. It includes "
          "delivery, the user reading and typing the code, and any fallback. Growing while delivery "
          "latency is flat: a UX or app problem (code entry screen, deep links), not delivery. Near the "
          "verification window (default 5 min): users barely make it; expect more `unverified`.",
          "s", channel_quantiles("otp_verification_latency_seconds_bucket", F_ORDERS, (0.5, 0.95)), w=12, h=8)

    d.row("Cost")
    d.add(ts_panel(stack=True, decimals=2),
          "Spend per hour (USD)",
          "SMS pay plus call cost per hour, stacked per channel, at the current pace. A jump without "
          "more verified OTPs: SMS pumping (fraudulent traffic to premium numbers), more voice "
          "fallbacks, or a price change — see \"Cost per verified OTP\" and the per-MCC table on Regions.",
          "currencyUSD", [series("{{channel}}", "sum by (channel) (%s) * 3600" % rate("otp_cost_usd_total", F_ORDERS))],
          w=12, h=8)
    spend, verified = rate("otp_cost_usd_total", F_ORDERS), rate("otp_orders_total", F_ORDERS + ', outcome="verified"')
    d.add(ts_panel(min_val=0, decimals=4),
          "Cost per verified OTP (USD)",
          "Spend ÷ verified orders, overall and per app. It rises when money is spent on OTPs that are "
          "never verified (failed or pumped SMS, voice fallbacks). A jump in one country raises "
          "OtpCostPerVerifiedJump: open Regions, sort by cost per verified OTP.",
          "currencyUSD",
          [series("all", "sum (%s) / sum (%s)" % (spend, verified)),
           series("{{app_id}}", "sum by (app_id) (%s) / sum by (app_id) (%s)" % (spend, verified))],
          w=12, h=8)

    account(d)

    d.row("Exporter health")
    d.add(up_down(stat_panel(graph_mode=cm.BigValueGraphMode.NONE, color_mode=cm.BigValueColorMode.BACKGROUND)),
          "ITNIO API up",
          "Lowest otp_exporter_api_up of all exporter instances: UP while the provider accepts our "
          "credentials and answers. DOWN: every OTP panel above is stale — the daemon log says whether "
          "the API key/secret (status -1) or this host's IP (status -2) is rejected; runbook "
          "OtpExporterApiDown. Details on the Exporter internals dashboard.",
          "none", [instant("min (otp_exporter_api_up)")], w=6, h=5)
    d.add(stat_panel().color_scheme(fixed_color("blue")),
          "Orders pending",
          "Orders the exporters are tracking (issued, not finalized yet), selected apps. It follows "
          "traffic × (verification window + settle time). Growing without more traffic: polls cannot keep "
          "up or the API fails — see Exporter internals and runbook OtpExporterPendingBacklogGrowing.",
          "short", [instant('sum (otp_exporter_orders_pending{app_id=~"$app_id"})')], w=6, h=5)
    d.add(stat_panel().thresholds(thresholds(*OLDEST_PENDING_STEPS)).color_scheme(by_thresholds()),
          "Oldest pending order",
          "Age of the oldest tracked order, worst instance. It should stay below tracking.max_age "
          "(default 30 min); orange from 30 min, red from 40 min (alert OtpExporterOldestPendingTooOld): "
          "the API is unusable or the scheduler is stuck — runbook.",
          "s", [instant("max (otp_exporter_oldest_pending_age_seconds)")], w=6, h=5)
    d.add(stat_panel(graph_mode=cm.BigValueGraphMode.NONE).color_scheme(fixed_color("blue")),
          "Exporter instances reporting",
          "Exporter instances Prometheus scrapes right now (count of otp_exporter_build_info). Fewer "
          "than you run: an instance is down or not discovered — alerts OtpExporterDown / "
          "OtpExporterAbsent, runbook.",
          "short", [instant("count (otp_exporter_build_info)")], w=6, h=5)
    early_signals(d, "")
    return d


# ---------------------------------------------------------------------------------------------
# Regions: investigating a regional failure.
# ---------------------------------------------------------------------------------------------
# Table cells of a success ratio: red below 50%, orange below 80%, green above.
SUCCESS_STEPS = ("red", (0.5, "orange"), (0.8, "green"))
SUCCESS_CELLS = (*color_cells(*SUCCESS_STEPS), prop("decimals", 1))


def conv1h(offset):
    """Last-hour conversion per country from the 1h recording rules (optionally a day earlier)."""
    sel = "{%s}%s" % (F_ORDERS, " offset 1d" if offset else "")
    return ("sum by (country) (app_channel_country:otp_orders_verified:rate1h%s) / "
            "sum by (country) (app_channel_country:otp_orders:rate1h%s)" % (sel, sel))


# Operator metrics (otp_operator_*): attempts carry country, mcc, mnc, operator, channel, result (no
# app_id); orders carry app_id, country, operator, outcome (no channel); cost carries app_id,
# country, operator; the delivery latency histogram country, operator.
F_OP_ATTEMPTS = 'channel=~"$channel", country=~"$country"'
F_OP_ORDERS = 'app_id=~"$app_id", country=~"$country"'


F_OP_LATENCY = 'country=~"$country"'  # otp_operator_delivery_latency_seconds: country, operator only


def operators_table():
    """One row per (country, operator) of the selection over the time range."""
    attempts = "sum by (country, operator) (%s)" % rate("otp_operator_attempts_total", F_OP_ATTEMPTS, R, "increase")
    verified = "sum by (country, operator) (%s)" % rate("otp_operator_orders_total", F_OP_ORDERS + ', outcome="verified"',
                                                        R, "increase")
    spend = "sum by (country, operator) (%s)" % rate("otp_operator_cost_usd_total", F_OP_ORDERS, R, "increase")
    return column_table([
        Column("Attempts", "short", attempts),
        Column("Delivery success", "percentunit",
               ratio("otp_operator_attempts_total", 'result="delivered"', "otp_operator_attempts_total",
                     F_OP_ATTEMPTS, "country, operator", R, "increase"), SUCCESS_CELLS),
        Column("Orders", "short",
               "sum by (country, operator) (%s)" % rate("otp_operator_orders_total", F_OP_ORDERS, R, "increase")),
        Column("Conversion", "percentunit",
               ratio("otp_operator_orders_total", 'outcome="verified"', "otp_operator_orders_total", F_OP_ORDERS,
                     "country, operator", R, "increase"), SUCCESS_CELLS),
        Column("p95 delivery latency", "s",
               "histogram_quantile(0.95, sum by (country, operator, le) (%s))"
               % rate("otp_operator_delivery_latency_seconds_bucket", F_OP_LATENCY, R, "increase"),
               (prop("decimals", 1),)),
        Column("Spend", "currencyUSD", spend, (prop("decimals", 2),)),
        Column("Cost per verified OTP", "currencyUSD", "%s / %s" % (spend, verified), (prop("decimals", 4),)),
    ], {"country": "Country", "operator": "Operator"}, sort_by="Delivery success", desc=False, ordered=True)


def regions():
    d = Board("otp-regions", "OTP regions",
              "Which countries and mobile networks (MCC) fail, are slow, or cost too much. Start from the "
              "table (worst conversion first), confirm on the map, then drill into MCCs.",
              otp_variables())
    vol = "sum by (country) (increase(otp_orders_total{%s}[%s]))" % (F_ORDERS, R)
    conv = verified_ratio("country", window=R, fn="increase")

    d.row("Countries")
    countries, queries = column_table([
        Column("Orders", "short", vol),
        Column("Delivery success", "percentunit", delivered_ratio("country", window=R, fn="increase"), SUCCESS_CELLS),
        Column("Conversion", "percentunit", conv, SUCCESS_CELLS),
        Column("p95 delivery latency", "s",
               "histogram_quantile(0.95, sum by (country, le) (%s))"
               % rate("otp_delivery_latency_seconds_bucket", F_LATENCY, R, "increase"), (prop("decimals", 1),)),
        Column("Fallback rate", "percentunit", fallback_ratio("by (country) ", R, "increase")),
        Column("Cost per verified OTP", "currencyUSD", spend_per("country", "otp_orders_total", 'outcome="verified"'),
               (prop("decimals", 4),)),
    ], {"country": "Country"}, sort_by="Conversion", desc=False, ordered=True)
    d.add(countries,
          "Countries, worst conversion first (time range)",
          "One row per country over the selected time range: finalized orders, delivery success "
          "(delivered ÷ attempts), conversion (verified ÷ finalized), p95 delivery latency, fallback rate "
          "(fallbacks ÷ orders), cost per verified OTP. Sorted by conversion, worst first; click a column "
          "header to sort by another. Ignore rows with a handful of orders. A red row with normal volume: "
          "set the country variable to it and read the MCC panels below (one network or all of them?); "
          "delivery low → routes/provider (runbook OtpCountryDeliveryCollapse); delivery fine but "
          "conversion low → users do not get or enter the code (latency, sender id filtered as spam).",
          "short", queries, w=24, h=11,
          links=orders_links(["country"], "data")
          + [drill_link("Operators of this country (exporter breakdown)", "/api/v1/breakdown", ["country"], "data",
                        (("by", "operator"),))])

    operators, queries = operators_table()
    d.add(operators,
          "Operators of the selected countries (time range)",
          "One row per country and mobile operator (the receiver's network, from MCC+MNC; `unknown` when "
          "the provider gave no MNC or the network is not in the MCC/MNC table) over the selected range: "
          "attempts and their delivery success (channel and country filters), finalized orders and their "
          "conversion (app and country filters; an order's operator is its first attempt's), p95 delivery "
          "latency of delivered attempts (country filter), spend and cost per verified OTP (spend of the "
          "operator's attempts, a call under its order's network, ÷ its verified orders; app and country "
          "filters). Worst delivery success first. Set the country variable to the country of an alert: "
          "one red operator with the others green is that operator's network or the provider's route to "
          "it (tell the provider, with the operator and MCC); every operator red is country-level (route, "
          "sender-id registration); one operator's latency far above the others' is a slow route or a "
          "congested network. The link \"Operators of this country (exporter breakdown)\" gives the same "
          "figures from the exporter's order journal; click a row for its orders.",
          "short", queries, w=24, h=10,
          links=orders_links(["country", "operator"], "data")
          + [drill_link("Operators of this country (exporter breakdown)", "/api/v1/breakdown", ["country"], "data",
                        (("by", "operator"),))])

    d.add(conversion_map(),
          "Conversion by country (time range)",
          "Each country (ISO 3166 alpha-2 code looked up in Grafana's country gazetteer) as a circle sized "
          "by finalized orders and coloured by conversion: red below 50%, orange below 80%, green above. "
          "A big red circle is where users are locked out: open the table above for its numbers and "
          "runbook OtpCountryConversionCollapse. `unknown` countries are not drawn.",
          "percentunit", [table_query(conv, "{{country}}"), table_query(vol, "{{country}}")], w=14, h=12,
          links=orders_links(["country"], "data"))

    # Conversion drop against the same hour yesterday, from the 1h recording rules.
    guard = "sum by (country) (app_channel_country:otp_orders:rate1h{%s}) * 3600 >= 20" % F_ORDERS
    drop = "topk(10, ((%s) or (%s)) - (%s) and on (country) (%s))" % (conv1h(True), conv1h(False), conv1h(False), guard)
    d.add(table_panel("Drop vs yesterday", desc=True).decimals(1)
          .transformations([
              merge(),
              dm.DataTransformerConfig(id_val="filterByValue", options={
                  "filters": [{"fieldName": "Value #A", "config": {"id": "isNull", "options": {}}}],
                  "type": "exclude", "match": "any"}),
              organize({"country": "Country", "Value #A": "Drop vs yesterday", "Value #B": "Conversion, last hour"}),
          ])
          .override_by_name("Drop vs yesterday", color_cells("green", (0.1, "orange"), (0.25, "red"))),
          "Largest conversion drops vs the same hour yesterday",
          "Countries with at least 20 orders in the last hour, ranked by how much their last-hour "
          "conversion (recording rules app_channel_country:otp_orders_verified:rate1h ÷ …:otp_orders:rate1h) "
          "fell against the same hour yesterday (offset 1d): a drop of 0.30 means 30 points lower. "
          "Countries without traffic at that hour yesterday (or a Prometheus younger than a day) show 0. "
          "Ignores the time picker (always now). A large drop in a big country: open the table above "
          "filtered on it and follow runbook OtpCountryConversionCollapse.",
          "percentunit",
          [table_query(drop, "{{country}}"),
           table_query("(%s) and on (country) (%s)" % (conv1h(False), guard), "{{country}}")],
          w=10, h=12, links=orders_links(["country"], "data"))

    d.row("Per country over time")
    d.add(ratio_panel(),
          "Delivery success by country and channel",
          "Delivered ÷ attempts per country and channel. Use the country variable to compare a few "
          "countries. One country's sms line falling to the floor while others hold: route outage "
          "(alert OtpCountryDeliveryCollapse) — check the MCC table below to see whether one network or "
          "the whole country fails, and the daemon log for the provider's failure reasons.",
          "percentunit", [series("{{country}} {{channel}}", delivered_ratio("country, channel"))], w=12, h=9,
          links=orders_links(["country", "channel"]))
    d.add(slo_panel().override_by_name("SLO target", NO_LINKS),
          "Conversion by country",
          "Verified ÷ finalized orders per country against the SLO line. A country far below the others "
          "with normal delivery success: users get codes late or not at all (check p95 latency in the "
          "table), or the sender id is filtered; with low delivery success: see the panel on the left.",
          "percentunit", [series("{{country}}", verified_ratio("country")), series(*SLO_TARGET)], w=12, h=9,
          links=orders_links(["country"]))
    d.add(ts_panel(min_val=0, decimals=1),
          "Fallback rate by country",
          "Channel fallbacks ÷ finalized orders per country (app and country filters). A country jumping "
          "up: its first channel (usually SMS) fails there and voice takes over — cost goes up too "
          "(alert OtpFallbackRateSpike).",
          "percentunit", [series("{{country}}", fallback_ratio("by (country) "))], w=12, h=9,
          links=orders_links(["country"]))
    d.add(ts_panel(min_val=0),
          "p95 delivery latency by country",
          "95th percentile of delivery latency per country and channel (no app filter: the histogram has "
          "no app_id). A country drifting above its peers: a slow route; raise it with the provider with "
          "the MCC from the table below.",
          "s", [series("{{country}} {{channel}}", "histogram_quantile(0.95, sum by (country, channel, le) (%s))"
                       % rate("otp_delivery_latency_seconds_bucket", F_LATENCY))], w=12, h=9,
          links=orders_links(["country", "channel"], failed=False))
    d.add(ratio_panel(),
          "Delivery success by operator",
          "Delivered ÷ attempts of finalized orders per country and mobile operator (channel and country "
          "filters; otp_operator_attempts_total). Set the country variable first: one operator's line "
          "falling while the others of its country hold is a network or route problem of that operator "
          "(runbook OtpCountryDeliveryCollapse, step \"which operator\"); click the line for its orders.",
          "percentunit", [series("{{country}} {{operator}}",
                                 ratio("otp_operator_attempts_total", 'result="delivered"', "otp_operator_attempts_total",
                                       F_OP_ATTEMPTS, "country, operator"))], w=12, h=9,
          links=orders_links(["country", "operator"]))
    d.add(ratio_panel(),
          "Conversion by operator",
          "Verified ÷ finalized orders per country and mobile operator of the order's first attempt (app "
          "and country filters; otp_operator_orders_total). An operator far below its country's other "
          "operators with normal delivery success: its users get the code late or filtered as spam; click "
          "the line for its orders and read one order's timeline.",
          "percentunit", [series("{{country}} {{operator}}",
                                 ratio("otp_operator_orders_total", 'outcome="verified"', "otp_operator_orders_total",
                                       F_OP_ORDERS, "country, operator"))], w=12, h=9,
          links=orders_links(["country", "operator"]))

    d.row("Mobile networks (MCC) and cost")
    mccs, queries = column_table([
        Column("Spend", "currencyUSD",
               "sum by (country, mcc) (%s)" % rate("otp_cost_usd_total", F_ORDERS, R, "increase"),
               (prop("decimals", 2),)),
        Column("SMS segments", "short",
               "sum by (country, mcc) (%s)" % rate("otp_sms_segments_total", F_APP_COUNTRY, R, "increase")),
        Column("Delivery success", "percentunit", delivered_ratio("country, mcc", window=R, fn="increase"),
               SUCCESS_CELLS),
        Column("Cost per delivered attempt", "currencyUSD",
               spend_per("country, mcc", "otp_delivery_attempts_total", 'result="delivered"'), (prop("decimals", 4),)),
    ], {"country": "Country", "mcc": "MCC"}, sort_by="Spend", desc=True)
    d.add(mccs,
          "Per-MCC cost and delivery (time range)",
          "One row per country and MCC (mobile country code; `unknown` for voice calls whose country came "
          "from the calling code) over the selected range: spend, SMS billed segments, delivery success, "
          "spend per delivered attempt. Sorted by spend. An MCC whose spend grows while delivery success "
          "falls: paying for failed messages or pumped traffic — runbook OtpCostPerVerifiedJump. Segments "
          "far above attempts: the OTP template is too long or uses non-GSM characters (UCS-2 halves "
          "the segment size).",
          "currencyUSD", queries, w=12, h=10, links=orders_links(["country", "mcc"], "data"))
    d.add(ts_panel(min_val=0, decimals=2),
          "Spend per hour by MCC (top 10)",
          "USD per hour at the current pace for the ten most expensive country/MCC pairs. A pair that "
          "suddenly climbs without a matching rise in verified OTPs is the classic SMS-pumping signature "
          "(fraudulent sign-ups to premium-rate numbers): block the prefix in the issuing app and tell the "
          "provider.",
          "currencyUSD",
          [series("{{country}} {{mcc}}", "topk(10, sum by (country, mcc) (%s) * 3600)"
                  % rate("otp_cost_usd_total", F_ORDERS))],
          w=12, h=10, links=orders_links(["country", "mcc"]))
    early_signals(d, "country")
    return d


def conversion_map():
    """World map: a circle per country, sized by orders (query B), coloured by conversion (query A)."""
    style = {
        "size": cm.ScaleDimensionConfig(field="Orders", fixed=5, min_val=4, max_val=20),
        "color": cm.ColorDimensionConfig(field="Conversion", fixed="dark-green"),
        "opacity": 0.6,
        "symbol": cm.ResourceDimensionConfig(mode=cm.ResourceDimensionMode.FIXED, fixed="img/icons/marker/circle.svg"),
        "symbolAlign": {"horizontal": "center", "vertical": "center"},
        "rotation": cm.ScalarDimensionConfig(fixed=0, mode=cm.ScalarDimensionMode.MOD, min_val=-360, max_val=360),
        "textConfig": {"fontSize": 12, "offsetX": 0, "offsetY": 0, "textAlign": "center", "textBaseline": "middle"},
    }
    return (geomap.Panel()
            .transformations([merge(), organize({"Value #A": "Conversion", "Value #B": "Orders"})])
            .view(geomap.MapViewConfig().id("zero").lat(20).lon(0).zoom(1).all_layers(True))
            .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(False).show_attribution(True))
            .basemap(cb.MapLayerOptions().type("default").name("Basemap").config({}))
            .layers([cb.MapLayerOptions().type("markers").name("Conversion").tooltip(True)
                     .location(cb.FrameGeometrySource().mode(cm.FrameGeometrySourceMode.LOOKUP).lookup("country")
                               .gazetteer("public/gazetteer/countries.json"))
                     .config({"showLegend": True, "style": style})])
            .tooltip(geomap.TooltipOptions().mode(gm.TooltipMode.DETAILS))
            .decimals(1).color_scheme(by_thresholds()).thresholds(thresholds(*SUCCESS_STEPS))
            .override_by_name("Orders", [prop("unit", "short")]))


# ---------------------------------------------------------------------------------------------
# Exporter internals.
# ---------------------------------------------------------------------------------------------
def internals():
    d = Board("otp-exporter-internals", "OTP exporter internals",
              "Health of itnio-otp-exporter itself: tracked orders, spool input, ITNIO API queries. When "
              "the OTP dashboards look wrong, check here first that the numbers can be trusted.",
              [datasource_variable(), app_variable("otp_exporter_orders_pending")])
    d.row("ITNIO API")
    d.add(up_down(statetimeline.Panel()
                  .merge_values(True).show_value(cm.VisibilityMode.NEVER).align_value(cm.TimelineValueAlignment.LEFT)
                  .row_height(0.8)
                  .legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST)
                          .placement(cm.LegendPlacement.BOTTOM).show_legend(True))
                  .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.SINGLE).sort(cm.SortOrder.NONE))
                  .fill_opacity(80).line_width(0)),
          "API up per instance",
          "otp_exporter_api_up per exporter instance over time: green while the provider accepts our "
          "credentials and answers, red while it rejects the API key/secret (status -1) or this host's IP "
          "(status -2), or cannot be reached. Red: read the daemon log of that instance (it says which) "
          "and follow runbook OtpExporterApiDown.",
          "none", [series("{{instance}}", "max by (instance) (otp_exporter_api_up)")], w=12, h=7)
    requests = "sum by (instance) (rate(otp_exporter_api_requests_total%s[$__rate_interval]))"
    d.add(ts_panel(table_legend=False, min_val=0, decimals=1, threshold_style=cm.GraphThresholdsStyleMode.DASHED,
                   steps=("green", (0.2, "red"))),
          "API error ratio",
          "Share of record queries whose answer was not status \"0\", per instance. Above 20% for 10 "
          "minutes raises OtpExporterApiErrorsHigh: the panel \"API requests by status\" tells which "
          "status dominates.",
          "percentunit",
          [series("{{instance}}", "(%s or %s * 0) / %s" % (requests % '{status!="0"}', requests % "", requests % ""))],
          w=12, h=7)
    d.add(with_colors(ts_panel(stack=True), {"0": "green"}),
          "API requests by status",
          "Record queries per second by answer, all instances, stacked. 0 = success; -1 account "
          "authentication error (API key/secret), -2 IP restricted (allow-list this host's egress IP), "
          "-16 timestamp expired (clock skew: the daemon corrects it from the Date header and logs it; "
          "fix NTP), -18 provider system error (retried), -22 parameter error (a bad order id or appId), "
          "http_NNN, timeout, connect_error, invalid_response: network or provider trouble. http_429: we "
          "exceed the provider's rate limit — lower api.max_requests_per_second.",
          "reqps", [series("{{status}}", "sum by (status) (rate(otp_exporter_api_requests_total[$__rate_interval]))")],
          w=12, h=8)
    api = "sum by (le) (rate(otp_exporter_api_request_duration_seconds_bucket[$__rate_interval]))"
    d.add(ts_panel(table_legend=False, min_val=0),
          "API request latency p50 / p95 / p99",
          "Duration of record queries (all instances). p99 approaching api.timeout (default 10s) turns into "
          "`timeout` errors and slower polling; if it persists, check the network path to the provider "
          "(proxy, DNS, TLS) and ask the provider.",
          "s", quantiles("", api, (0.5, 0.95, 0.99)), w=12, h=8)

    d.row("Tracked orders")
    d.add(ts_panel(min_val=0),
          "Orders pending per instance and app",
          "Orders being tracked. It follows traffic × (verification window + settle time). Growing while "
          "traffic is flat: polls do not keep up (api.max_requests_per_second / max_in_flight too low, "
          "API slow or failing) — runbook OtpExporterPendingBacklogGrowing; if one instance holds far more "
          "than the others, its spool shard gets more traffic.",
          "short",
          [series("{{instance}} {{app_id}}",
                  'sum by (instance, app_id) (otp_exporter_orders_pending{app_id=~"$app_id"})')],
          w=12, h=8)
    d.add(ts_panel(table_legend=False, min_val=0, threshold_style=cm.GraphThresholdsStyleMode.DASHED,
                   steps=OLDEST_PENDING_STEPS),
          "Oldest pending order age",
          "Age of the oldest tracked order per instance. A sawtooth below tracking.max_age (default 30 min) "
          "is healthy. A line climbing past it (dashed 40 min line, alert OtpExporterOldestPendingTooOld): "
          "the API is unusable (see API up) or the scheduler is stuck — runbook.",
          "s", [series("{{instance}}", "max by (instance) (otp_exporter_oldest_pending_age_seconds)")], w=12, h=8)
    d.add(ts_panel(table_legend=False, min_val=0),
          "Finalized orders per instance",
          "Orders finalized per second per exporter instance: the throughput each instance handles. When "
          "sharding the spool, instances should carry comparable loads; one instance at zero while others "
          "work: its spool shard receives nothing, or it is stuck.",
          "cps", [series("{{instance}}", "sum by (instance) (rate(otp_orders_total[$__rate_interval]))")], w=12, h=8)
    polls = "sum by (le) (rate(otp_exporter_polls_per_order_bucket[$__rate_interval]))"
    d.add(ts_panel(table_legend=False, min_val=0, decimals=1),
          "Record queries per finalized order",
          "How many record queries each finalized order cost: mean, p50 and p95. It grows when the "
          "provider's delivery reports arrive late or the API errors (retries). A jump multiplies the API "
          "load: check API errors, and raise polling.first_delay if most orders are queried before their "
          "first delivery report.",
          "short",
          [series("mean", "sum (rate(otp_exporter_polls_per_order_sum[$__rate_interval])) / "
                          "sum (rate(otp_exporter_polls_per_order_count[$__rate_interval]))"),
           *quantiles("", polls, (0.5, 0.95))],
          w=12, h=8)

    d.row("Spool input and build")
    d.add(with_colors(ts_panel(table_legend=False, stack=True),
                      {"accepted": "green", "duplicate": "yellow", "rejected": "red"}),
          "Spool lines by result",
          "Order lines read from the spool per second: accepted, duplicate (already pending or finalized "
          "in the last 24 h), rejected (bad id, bad JSON, unknown appId, too long: moved to the spool's "
          "quarantine folder with the reason). Rejected lines are OTPs missing from every metric: fix the "
          "writing application (runbook OtpExporterSpoolRejects). Many duplicates: an application writes "
          "the same order id twice. Accepted at zero while OTPs are sent: the applications do not write "
          "into the spool, or into the wrong directory.",
          "cps", [series("{{result}}", "sum by (result) (rate(otp_exporter_spool_lines_total[$__rate_interval]))")],
          w=12, h=8)
    d.add(stat_panel(graph_mode=cm.BigValueGraphMode.NONE, text_mode=cm.BigValueTextMode.VALUE_AND_NAME)
          .color_scheme(fixed_color("blue")),
          "Versions running",
          "Exporter instances per version (otp_exporter_build_info). More than one version outside a "
          "rollout: an instance was not upgraded. No value at all: Prometheus scrapes no exporter "
          "(alert OtpExporterAbsent).",
          "short", [instant("count by (version) (otp_exporter_build_info)", legend="{{version}}")], w=12, h=8)

    d.row("Request budget")
    delay = "sum by (purpose, le) (rate(otp_exporter_poll_delay_seconds_bucket[$__rate_interval]))"
    d.add(ts_panel(min_val=0),
          "Poll delay p50 / p95 by purpose",
          "How late record queries go out against the moment they were planned for, per purpose: "
          "decisive (a moment that decides an outcome), expected (an expected delivery report or "
          "verification, an overdue check), routine (backoff polls, retries). Healthy: nearly all "
          "under 1 s. Routine climbing first, then expected and decisive: the request budget "
          "(api.max_requests_per_second) is too small for the traffic; the daemon serves decisive and "
          "expected queries first. Runbook OtpExporterPollBudgetShort.",
          "s", [series("{{purpose}} p%d" % round(q * 100), "histogram_quantile(%s, %s)" % (q, delay))
                for q in (0.5, 0.95)],
          w=12, h=8)
    late = ("sum by (instance) (rate(otp_exporter_poll_delay_seconds_bucket{le=\"10\"}[$__rate_interval])) / "
            "sum by (instance) (rate(otp_exporter_poll_delay_seconds_count[$__rate_interval]))")
    d.add(ts_panel(table_legend=False, min_val=0, max_val=1, decimals=1,
                   threshold_style=cm.GraphThresholdsStyleMode.DASHED, steps=("green", (0.5, "red"))),
          "Queries more than 10 s late",
          "Share of record queries per instance that went out more than 10 s after their planned "
          "moment. Above 50% over 10 minutes raises OtpExporterPollBudgetShort: raise "
          "api.max_requests_per_second within the provider's limit, or shard the spool over more "
          "instances.",
          "percentunit", [series("{{instance}}", "1 - (%s)" % late)], w=12, h=8)
    return d


# ---------------------------------------------------------------------------------------------
# Output.
# ---------------------------------------------------------------------------------------------
DASHBOARDS = [("otp-delivery-health.json", delivery_health), ("otp-regions.json", regions),
              ("otp-exporter-internals.json", internals)]


def to_plain(model):
    """The SDK's serialization, as plain JSON values."""
    return json.loads(JSONEncoder().encode(model))


def check_schema(name, plain):
    """Decodes the dashboard through the SDK's types and encodes it again: a field the types do not
    know (a typo, a wrong nesting) would be dropped on the way and show up as a difference."""
    decoded = to_plain(dm.Dashboard.from_json(plain))
    expected = json.loads(json.dumps(plain))
    for annotation in expected["annotations"]["list"]:
        for key in AlertAnnotation.Query.EXTRA:  # the documented extension, unknown to the SDK's type
            annotation.pop(key, None)
    where = first_difference(expected, decoded, "")
    if where is not None:
        die("dashboards/%s does not round-trip through grafana-foundation-sdk's types at %s" % (name, where))


def first_difference(a, b, path):
    """The JSON path of the first place where a and b differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return "%s.%s" % (path, key)
            found = first_difference(a[key], b[key], "%s.%s" % (path, key))
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, "%s[%d]" % (path, i))
            if found is not None:
                return found
        return None
    return None if a == b else path or "."


def render():
    register_default_plugins()  # lets the SDK decode panels and Prometheus queries by type
    files = {}
    queries = []
    for name, build in DASHBOARDS:
        dash = to_plain(build().build())
        check_schema(name, dash)
        files[name] = json.dumps(dash, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
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
