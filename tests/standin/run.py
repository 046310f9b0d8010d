#!/usr/bin/env python3
"""Acceptance check with a second, independent provider stand-in.

A small record endpoint written from the provider's documentation alone (not from the
simulator in crates/itnio-sim), serving hand-written records in the shapes real payloads take
(numbers as strings, times with and without offsets, nulls, unknown fields, evolving
records, transient faults). It drives the exporter binary through the config and spool
contracts only, and compares /metrics with expectations worked out by hand from the
outcome and metric rules in the README. Standard library only.

Usage: python3 tests/standin/run.py PATH-TO-BINARY   (exit 0 when every expectation holds)
"""
import hashlib, http.server, json, os, re, socket, subprocess, sys, tempfile, threading, time, urllib.request

BIN = sys.argv[1]
KEY, SECRET = "acc-key", "Very-Secret-xyz-123"
T0 = time.time()
CST = 8 * 3600


def iso(t):  # RFC 3339 with +08:00
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + CST)) + "+08:00"


def naive(t):  # yyyy-MM-dd HH:mm:ss in +08:00
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t + CST))


def record(order_id, age):
    """The record of an order `age` seconds after T0 (None: unknown order)."""
    s = T0
    R = {
        "v-sms-in": {"verifications": {"matched": 0, "channel": "sms", "verifiedDate": iso(s + 5), "oriReceiver": "919812345678"},
                     "sms": [{"submitTm": iso(s), "sendTm": iso(s), "doneTm": iso(s + 3), "mcc": "404", "mnc": "10", "sender": "", "chargeCnt": "1", "pay": "0.0040", "status": 0, "reason": "ok"}]},
        "fb-call-cn": {"verifications": {"matched": "0", "channel": "call", "verifiedDate": iso(s + 40)},
                       "sms": [{"submitTm": iso(s), "doneTm": iso(s + 20), "mcc": 460, "mnc": 0, "chargeCnt": 1, "pay": "0.003", "status": "1", "reason": "UNDELIV"}],
                       "call": [{"terminationCode": "0", "terminationReason": "OK", "submitTime": iso(s + 21), "callTime": iso(s + 22), "ringingTime": iso(s + 23), "answerTime": iso(s + 30), "hangupTime": iso(s + 45), "callDuration": 15, "chargedDuration": 20, "displayNum": None, "billPeriodstring": "20+20", "code": "661", "rate": "0.138", "cost": "0.05"}]},
        "naive-times": {"verifications": {"matched": 0, "channel": "sms", "verifiedDate": naive(s + 9)},
                        "sms": [{"submitTm": naive(s), "doneTm": naive(s + 2), "mcc": 404, "mnc": 45, "chargeCnt": 2, "pay": "0.008", "status": 0}]},
        "unknown-order": None,
        "m3": {"verifications": {"matched": 3}},
        "failed-gb": {"verifications": {"matched": 2, "channel": "sms"},
                      "sms": [{"submitTm": iso(s), "doneTm": iso(s + 1), "mcc": 234, "mnc": 15, "chargeCnt": 1, "pay": "0.02", "status": 0}]},
        "unverified-in": {"verifications": {"matched": -1, "channel": "sms"}, "unknownField": [1, 2],
                          "sms": [{"submitTm": iso(s), "doneTm": iso(s + 4), "mcc": 404, "mnc": 10, "chargeCnt": 1, "pay": "0.004", "status": 0}], "call": None},
        "undelivered-cn": {"verifications": {"matched": -1},
                           "sms": [{"submitTm": iso(s), "doneTm": iso(s + 4), "mcc": 460, "mnc": 1, "chargeCnt": 1, "pay": "0.003", "status": 1}]},
        "pending-forever": {"verifications": {"matched": -1},
                            "sms": [{"submitTm": iso(s), "mcc": 404, "mnc": 10, "chargeCnt": 1, "pay": "0.004", "status": -1}]},
        "call-only-gb": {"verifications": {"matched": -1, "oriReceiver": "447700900123"},
                         "call": [{"terminationCode": 0, "submitTime": iso(s), "answerTime": iso(s + 6), "cost": "0.11"}]},
        "used": {"verifications": {"matched": 4, "channel": "sms", "verifiedDate": iso(s + 3)},
                 "sms": [{"submitTm": iso(s), "doneTm": iso(s + 1), "mcc": 404, "mnc": 10, "chargeCnt": 1, "pay": "0.004", "status": 0}]},
        "sna-gb": {"verifications": {"matched": 0, "channel": "sna", "verifiedDate": iso(s + 2)},
                   "sna": [{"postVerificationTime": iso(s), "verificationBackTime": iso(s + 1), "mcc": "234", "mnc": "15", "status": 0}]},
        "fault-x": {"verifications": {"matched": 0, "channel": "sms", "verifiedDate": iso(s + 3)},
                    "sms": [{"submitTm": iso(s), "doneTm": iso(s + 1), "mcc": 404, "mnc": 10, "chargeCnt": 1, "pay": "0.004", "status": 0}]},
    }
    if order_id == "evolving":
        if age < 2.5:
            return {"verifications": {"matched": 1}, "sms": [{"submitTm": iso(s), "mcc": 404, "mnc": 10, "status": -1}]}
        return {"verifications": {"matched": 0, "channel": "sms", "verifiedDate": iso(s + 2)},
                "sms": [{"submitTm": iso(s), "doneTm": iso(s + 2), "mcc": 404, "mnc": 10, "chargeCnt": 1, "pay": "0.004", "status": 0}]}
    rec = R.get(order_id)
    if rec is None:
        return None
    return dict(rec, orderId=order_id, flowId=1)


FAULTS = {"fault-x": ["503", "429", "badjson", "-18"]}
seen_signs_ok = [0]
lock = threading.Lock()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body, headers=()):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/otp/verification/orderId/record":
            return self.send(404, "{}")
        ts, key, sign = self.headers.get("Timestamp", ""), self.headers.get("Api-Key", ""), self.headers.get("Sign", "")
        want = hashlib.md5((key + SECRET + ts).encode()).hexdigest()
        if key != KEY or sign != want:
            return self.send(200, json.dumps({"status": "-1", "reason": "auth"}))
        if not ts.isdigit() or abs(int(ts) - time.time()) > 60:
            return self.send(200, json.dumps({"status": "-16", "reason": "ts"}))
        req = json.loads(body)
        oid = req.get("orderId")
        with lock:
            seen_signs_ok[0] += 1
            fault = FAULTS.get(oid, []).pop(0) if FAULTS.get(oid) else None
        if fault == "503":
            return self.send(503, "<html>busy</html>")
        if fault == "429":
            return self.send(429, "", [("Retry-After", "1")])
        if fault == "badjson":
            return self.send(200, '{"status":"0","data":{')
        if fault == "-18":
            return self.send(200, json.dumps({"status": "-18", "reason": "system error"}))
        rec = record(oid, time.time() - T0)
        status = 0 if oid in ("v-sms-in", "used") else "0"  # status as number and as string
        self.send(200, json.dumps({"status": status, "reason": "success", "data": rec}))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def scrape(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$', line)
        name, labels, value = m.group(1), m.group(3) or "", float(m.group(4))
        lab = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels)))
        out[(name, lab)] = value
    return out, text


def total(ms, name, **flt):
    return sum(v for (n, lab), v in ms.items() if n == name and all(dict(lab).get(k) == w for k, w in flt.items()))


def main():
    api_port, port = free_port(), free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", api_port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    tmp = tempfile.mkdtemp()
    spool = os.path.join(tmp, "spool"); os.makedirs(spool)
    cfg = os.path.join(tmp, "config.yml")
    open(cfg, "w").write(f"""listen: "127.0.0.1:{port}"
state_dir: {tmp}/state
api:
  base_url: http://127.0.0.1:{api_port}/otp
  api_key: {KEY}
  api_secret: "${{STANDIN_SECRET}}"
  timeout: 3s
  max_in_flight: 4
  max_requests_per_second: 20
default_app: app1
apps:
  - id: app1
  - id: app2
spool:
  dir: {spool}
  rescan_interval: 2s
tracking:
  verification_window: 8s
  settle_timeout: 4s
  not_found_grace: 4s
  max_age: 20s
polling:
  first_delay: 300ms
  max_interval: 1s
""")
    env = dict(os.environ, STANDIN_SECRET=SECRET)
    log = open(os.path.join(tmp, "log"), "w+")
    proc = subprocess.Popen([BIN, "run", "--config", cfg], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(1)
        bare = ["v-sms-in", "fb-call-cn", "unknown-order", "m3", "failed-gb", "unverified-in", "undelivered-cn", "pending-forever", "evolving", "fault-x"]
        lines = bare + [
            json.dumps({"orderId": "naive-times", "issuedAt": int(T0)}),
            json.dumps({"orderId": "call-only-gb", "appId": "app2", "issuedAt": iso(T0)}),
            json.dumps({"orderId": "used", "appId": "app1"}),
            json.dumps({"orderId": "sna-gb", "issuedAt": T0}),
            "bad id with spaces", '{"orderId": "x"', json.dumps({"orderId": "y", "appId": "ghost"}), "z" * 65,
            "v-sms-in",  # duplicate inside the same file
        ]
        tmpf = os.path.join(spool, ".orders.tmp")
        open(tmpf, "w").write("\n".join(lines) + "\n")
        os.rename(tmpf, os.path.join(spool, "orders"))
        deadline = time.time() + 90
        while time.time() < deadline:
            time.sleep(1)
            ms, text = scrape(port)
            if total(ms, "otp_exporter_spool_lines_total", result="accepted") == 14 and total(ms, "otp_exporter_orders_pending") == 0 and time.time() > T0 + 3:
                break
        ms, text = scrape(port)
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        problems = []

        def expect(what, got, want):
            if abs(got - want) > 1e-9:
                problems.append(f"{what}: got {got}, want {want}")

        expect("accepted", total(ms, "otp_exporter_spool_lines_total", result="accepted"), 14)
        expect("duplicate", total(ms, "otp_exporter_spool_lines_total", result="duplicate"), 1)
        expect("rejected", total(ms, "otp_exporter_spool_lines_total", result="rejected"), 4)
        orders = {  # (app, channel, country, outcome) -> count
            ("app1", "sms", "IN", "verified"): 4,  # v-sms-in, naive-times, evolving, fault-x
            ("app1", "call", "CN", "verified"): 1,
            ("app1", "none", "unknown", "not_found"): 2,
            ("app1", "sms", "GB", "failed"): 1,
            ("app1", "sms", "IN", "unverified"): 1,
            ("app1", "sms", "CN", "undelivered"): 1,
            ("app1", "sms", "IN", "expired"): 1,
            ("app2", "call", "GB", "unverified"): 1,
            ("app1", "sna", "GB", "verified"): 1,
        }
        orders[("app1", "sms", "IN", "verified")] += 1  # used (matched 4)
        for (app, ch, c, o), n in orders.items():
            if n:
                expect(f"orders {app}/{ch}/{c}/{o}", total(ms, "otp_orders_total", app_id=app, channel=ch, country=c, outcome=o), n)
        expect("orders total", total(ms, "otp_orders_total"), 14)
        expect("fallback sms->call CN", total(ms, "otp_channel_fallbacks_total", **{"from": "sms", "to": "call", "country": "CN"}), 1)
        expect("fallbacks total", total(ms, "otp_channel_fallbacks_total"), 1)
        expect("attempts call CN 460 delivered", total(ms, "otp_delivery_attempts_total", channel="call", country="CN", mcc="460", result="delivered"), 1)
        expect("attempts sms CN 460 failed", total(ms, "otp_delivery_attempts_total", channel="sms", country="CN", mcc="460", result="failed"), 2)
        expect("attempts call GB unknown delivered", total(ms, "otp_delivery_attempts_total", app_id="app2", channel="call", country="GB", mcc="unknown", result="delivered"), 1)
        expect("attempts sms IN pending", total(ms, "otp_delivery_attempts_total", channel="sms", country="IN", mcc="404", result="pending"), 1)
        expect("attempts sna GB delivered", total(ms, "otp_delivery_attempts_total", channel="sna", country="GB", mcc="234", result="delivered"), 1)
        expect("attempts total", total(ms, "otp_delivery_attempts_total"), 13)
        expect("cost call CN 460", total(ms, "otp_cost_usd_total", channel="call", country="CN", mcc="460"), 0.05)
        expect("cost sms CN 460", total(ms, "otp_cost_usd_total", channel="sms", country="CN", mcc="460"), 0.006)
        expect("cost sms IN 404", total(ms, "otp_cost_usd_total", channel="sms", country="IN", mcc="404"), 0.004 * 6 + 0.008)
        expect("cost call GB", total(ms, "otp_cost_usd_total", channel="call", country="GB", mcc="unknown"), 0.11)
        expect("cost sms GB", total(ms, "otp_cost_usd_total", channel="sms", country="GB", mcc="234"), 0.02)
        expect("segments IN", total(ms, "otp_sms_segments_total", country="IN", mcc="404"), 6 + 2)
        expect("segments total", total(ms, "otp_sms_segments_total"), 8 + 2 + 1)
        # delivered attempts: sms v-sms-in, naive, failed-gb, unverified-in, used, evolving, fault-x = 7; call CN, call GB = 2; sna 1
        expect("delivery latency count sms", total(ms, "otp_delivery_latency_seconds_count", channel="sms"), 7)
        expect("delivery latency count call", total(ms, "otp_delivery_latency_seconds_count", channel="call"), 2)
        expect("delivery latency count sna", total(ms, "otp_delivery_latency_seconds_count", channel="sna"), 1)
        expect("delivery latency sum call CN (answer-submit = 9s)", total(ms, "otp_delivery_latency_seconds_sum", channel="call", country="CN"), 9)
        expect("delivery latency sum sms naive+IN", total(ms, "otp_delivery_latency_seconds_sum", channel="sms", country="IN"), 3 + 2 + 1 + 4 + 2 + 1)
        expect("verification latency count", total(ms, "otp_verification_latency_seconds_count"), 7)
        expect("api_up", total(ms, "otp_exporter_api_up"), 1)
        for name in ["http_503", "http_429", "invalid_response", "-18"]:
            if total(ms, "otp_exporter_api_requests_total", status=name) < 1:
                problems.append(f"no request counted with status {name}")
        log.seek(0); logtext = log.read()
        for where, t in [("log", logtext), ("metrics", text), ("page", page)]:
            if SECRET in t:
                problems.append(f"secret in {where}")
        print("\n".join(problems) or "ALL EXPECTATIONS MET")
        if problems:
            print(text)
            print(logtext[-5000:])
        return 1 if problems else 0
    finally:
        proc.terminate(); proc.wait(15)
        srv.shutdown()


if __name__ == "__main__":
    sys.exit(main())
