#!/usr/bin/env python3
"""Control API latency at a fixed request rate, and time from create to first CONNECT.

For each backend (SQLite, then PostgreSQL), starts the release `skyport` on a fresh data
dir and database (rate limits off), creates a project, an API key and three dedicated
deployments, then:

1. Reads: GET /deployments/{id} and GET /deployments (list), alternating, open loop at
   --rate requests/s for --seconds. Latency is measured from the moment a request was
   due, not when a worker got to send it, so a stalled server cannot hide its queue
   (no coordinated omission); the service time (send to answer) is shown beside it.
2. Writes that wait for a broker: PUT /deployments/{id}/sessions with a new value each
   time (round-robin over the deployments), same rate and duration. Each answers 200
   only once the running broker reports the new revision in force; a 202 (not applied
   within the apply timeout) is counted separately.
3. Time to CONNECT: POST /deployments (dedicated), PUT …/authentication allowing
   anonymous clients (?wait=false, stored for the broker to start with), then
   `mosquitto_pub -q 1` every 20 ms until one succeeds; --creates times, median.

Prints the figures next to the goals (p99 < 20 ms reads, < 50 ms waiting writes, < 1 s
to CONNECT) and writes bench/results/api.{json,md}. Never asserts.
Run: bash bench/api.sh [--rate 500] [--seconds 10] [--creates 5] [--backends sqlite,postgres]
"""
import argparse
import http.client
import json
import os
import platform
import queue
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import uuid

ADMIN = "bench-admin-token-0123456789"
GOALS = {"reads": 0.020, "writes": 0.050, "connect": 1.0}


class Client:
    """One keep-alive HTTP connection to the control plane."""

    def __init__(self, port, token):
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                self.conn.request(method, "/api/v1" + path, body=data, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise


class ControlPlane:
    def __init__(self, bin_dir, backend, workdir):
        self.workdir = workdir
        self.database = None
        if backend == "postgres":
            server = os.environ.get("SKYPORT_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432")
            self.database = f"skyport_bench_{uuid.uuid4().hex}"
            psql(server, f"CREATE DATABASE {self.database}")
            self.server = server
            url = f"{server}/{self.database}"
        else:
            url = f"sqlite://{workdir}/skyport.db"
        self.proc = subprocess.Popen(
            [os.path.join(bin_dir, "skyport"), "--listen", "127.0.0.1:0",
             "--data-dir", workdir, "--database-url", url,
             "--broker-bin", os.path.join(bin_dir, "skyport-broker"),
             "--rate-limit", "off"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(workdir, "skyport.log"), "w"),
            env={**os.environ, "SKYPORT_ADMIN_TOKEN": ADMIN, "RUST_LOG": "warn"}, text=True)
        for line in self.proc.stdout:
            if "listening on " in line:
                self.port = int(line.rsplit(":", 1)[1])
                break
        else:
            raise SystemExit("skyport did not start; see " + os.path.join(workdir, "skyport.log"))
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def stop(self):
        """Deletes what it created (brokers included), then stops the control plane."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        # Brokers outlive the control plane by design: stop the ones this run started.
        deployments = os.path.join(self.workdir, "deployments")
        for entry in os.listdir(deployments) if os.path.isdir(deployments) else []:
            runtime = os.path.join(deployments, entry, "runtime.json")
            try:
                with open(runtime) as f:
                    os.kill(json.load(f)["pid"], signal.SIGTERM)
            except (OSError, ValueError, KeyError):
                pass
        if self.database:
            psql(self.server, f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")


def psql(server, sql):
    subprocess.run(["psql", f"{server}/postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
                   check=True, capture_output=True)


def wait_running(client, ident, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, body = client.call("GET", f"/deployments/{ident}")
        if status == 200 and body["status"] == "running" \
                and body["observed_generation"] == body["generation"]:
            return body
        time.sleep(0.1)
    raise SystemExit(f"deployment {ident} never ran")


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def open_loop(port, token, rate, seconds, request_of, workers=128):
    """Sends request_of(i) at `rate`/s for `seconds`; returns per-request records."""
    due = queue.Queue()
    records = []
    lock = threading.Lock()

    def work():
        client = Client(port, token)
        while True:
            item = due.get()
            if item is None:
                return
            i, at = item
            method, path, body, ok = request_of(i)
            sent = time.perf_counter()
            try:
                status, _ = client.call(method, path, body)
            except Exception as err:  # noqa: BLE001 - a failure is a data point
                status = f"error: {err}"
            done = time.perf_counter()
            with lock:
                records.append({"latency": done - at, "service": done - sent,
                                "ok": status in ok, "status": status})

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        at = start + i / rate
        pause = at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        due.put((i, at))
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return records, total / elapsed


def summarize(records, achieved):
    ok = [r for r in records if r["ok"]]
    lat = [r["latency"] for r in ok]
    svc = [r["service"] for r in ok]
    statuses = {}
    for r in records:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    return {"requests": len(records), "ok": len(ok), "statuses": statuses,
            "achieved_rate": round(achieved, 1),
            "p50_ms": round(percentile(lat, 50) * 1000, 2),
            "p99_ms": round(percentile(lat, 99) * 1000, 2),
            "max_ms": round(max(lat) * 1000, 2) if lat else None,
            "service_p50_ms": round(percentile(svc, 50) * 1000, 2),
            "service_p99_ms": round(percentile(svc, 99) * 1000, 2)}


def time_to_connect(client, index):
    started = time.perf_counter()
    status, body = client.call("POST", "/deployments",
                               {"name": f"connect-{index}", "plan": "dedicated"})
    assert status == 202, body
    ident = body["id"]
    status, body = client.call("PUT", f"/deployments/{ident}/authentication?wait=false",
                               {"allow_anonymous": True, "sources": [{"type": "built_in"}]})
    assert status in (200, 202), body
    port = None
    deadline = started + 60
    while time.perf_counter() < deadline:
        if port is None:
            _, body = client.call("GET", f"/deployments/{ident}")
            mqtt = (body.get("endpoints") or {}).get("mqtt")
            if mqtt:
                port = int(mqtt.rsplit(":", 1)[1])
        if port is not None:
            done = subprocess.run(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
                 "-t", "bench/connect", "-m", "x"], capture_output=True)
            if done.returncode == 0:
                return ident, time.perf_counter() - started
        time.sleep(0.02)
    raise SystemExit(f"deployment {ident} never accepted a CONNECT")


def run_backend(args, backend):
    workdir = tempfile.mkdtemp(prefix=f"skyport-bench-api-{backend}-")
    cp = ControlPlane(args.bin_dir, backend, workdir)
    try:
        admin = Client(cp.port, ADMIN)
        _, project = admin.call("POST", "/projects", {"name": "bench"})
        _, key = admin.call("POST", f"/projects/{project['id']}/api-keys", {"name": "bench"})
        client = Client(cp.port, key["secret"])
        ids = []
        for n in range(3):
            status, body = client.call("POST", "/deployments", {"name": f"bench-{n}", "plan": "dedicated"})
            assert status == 202, body
            ids.append(body["id"])
        for ident in ids:
            wait_running(client, ident)

        def read(i):
            if i % 2:
                return "GET", "/deployments?limit=20", None, (200,)
            return "GET", f"/deployments/{ids[i % len(ids)]}", None, (200,)

        def write(i):
            body = {"session_expiry_secs": 3600, "max_session_expiry_secs": 7200,
                    "max_queued_messages": 1000 + i}
            return "PUT", f"/deployments/{ids[i % len(ids)]}/sessions", body, (200,)

        print(f"[{backend}] reads at {args.rate}/s for {args.seconds}s ...", flush=True)
        reads = summarize(*open_loop(cp.port, key["secret"], args.rate, args.seconds, read))
        print(f"[{backend}] waiting writes at {args.rate}/s for {args.seconds}s ...", flush=True)
        writes = summarize(*open_loop(cp.port, key["secret"], args.rate, args.seconds, write))
        connects = []
        for n in range(args.creates):
            ident, seconds = time_to_connect(client, n)
            connects.append(seconds)
            client.call("DELETE", f"/deployments/{ident}")
        result = {"reads": reads, "writes": writes,
                  "connect_s": [round(s, 3) for s in connects],
                  "connect_median_s": round(statistics.median(connects), 3)}
        print(f"[{backend}] {json.dumps(result)}", flush=True)
        return result
    finally:
        cp.stop()


def verdict(value, goal):
    return "met" if value < goal else "MISSED"


def markdown(args, results):
    lines = ["# Control API latency and time to CONNECT (`bench/api.sh`)", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
             f"{args.note}", "",
             f"Open loop at {args.rate} requests/s for {args.seconds} s each; latency from "
             "the moment each request was due (service time, send to answer, beside it).", "",
             "| backend | requests | achieved/s | ok | p50 ms | p99 ms | max ms | service p50/p99 ms | goal p99 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for backend, r in results.items():
        for kind, goal in (("reads", GOALS["reads"]), ("writes", GOALS["writes"])):
            s = r[kind]
            name = "GET deployment / list" if kind == "reads" else "PUT sessions (waits for the broker)"
            lines.append(
                f"| {backend}: {name} | {s['requests']} | {s['achieved_rate']} | {s['ok']} "
                f"| {s['p50_ms']} | {s['p99_ms']} | {s['max_ms']} "
                f"| {s['service_p50_ms']} / {s['service_p99_ms']} "
                f"| < {goal * 1000:.0f} ms: {verdict(s['p99_ms'] / 1000, goal)} |")
    lines += ["", "Time from `POST /deployments` to the first successful `mosquitto_pub -q 1` "
              f"(median of {args.creates}; goal < 1 s):", "",
              "| backend | median s | all s | goal |", "|---|---|---|---|"]
    for backend, r in results.items():
        lines.append(f"| {backend} | {r['connect_median_s']} | {', '.join(map(str, r['connect_s']))} "
                     f"| {verdict(r['connect_median_s'], GOALS['connect'])} |")
    non_ok = {b: {k: r[k]["statuses"] for k in ("reads", "writes")} for b, r in results.items()}
    lines += ["", f"Answers by status: `{json.dumps(non_ok)}`", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--bin-dir", default=os.path.join(root, "target", "release"))
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--creates", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--note", default="")
    parser.add_argument("--out-dir", default=os.path.join(root, "bench", "results"))
    args = parser.parse_args()
    results = {b: run_backend(args, b) for b in args.backends.split(",")}
    text = markdown(args, results)
    print(text)
    with open(os.path.join(args.out_dir, "api.json"), "w") as f:
        json.dump({"rate": args.rate, "seconds": args.seconds, "results": results}, f, indent=2)
    with open(os.path.join(args.out_dir, "api.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
