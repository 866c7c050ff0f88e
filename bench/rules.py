#!/usr/bin/env python3
"""Rule engine throughput and its cost to MQTT traffic, in one run.

1. Sinks: one rule `SELECT payload.n AS n, clientid FROM "bench/rules/#"` into each of
   republish (a mosquitto_sub counts), webhook (an HTTP receiver in this script), Redis
   (RPUSH, 127.0.0.1:6379) and PostgreSQL (batched INSERT, 127.0.0.1:5432 database
   `test`, trust auth). `mosquitto_pub --repeat N` publishes at QoS 1; the figure is
   matched messages per second from the first publish until the sink holds all N.
2. MQTT cost: the same mosquitto_pub -> mosquitto_sub -C N pub/sub throughput with 0,
   1 and 10 active rules (each matching every message, with a Redis INCR action), as
   ratios against 0 rules measured in the same run.

Prints numbers and writes bench/results/rules.{json,md}; never asserts timing.
Run: bash bench/rules.sh [--messages N] [--rounds R]
"""
import argparse
import base64
import hashlib
import http.server
import json
import os
import platform
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

APP_ID, APP_SECRET = "bench", "bench-secret-0123456789"
TOPIC = "bench/rules/x"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Node:
    def __init__(self, binary, workdir):
        self.port, self.api = free_port(), free_port()
        with open(os.path.join(workdir, "config.json"), "w") as f:
            json.dump({"deployment_id": "bench-rules",
                       "listeners": {"tcp": f"127.0.0.1:{self.port}",
                                     "api": f"127.0.0.1:{self.api}"},
                       "limits": {"rule_buffer_messages": 1_000_000}}, f)
        with open(os.path.join(workdir, "security.json"), "w") as f:
            json.dump({"authentication": {"allow_anonymous": True},
                       "sessions": {"max_queued_messages": 10_000_000},
                       "app_keys": [{"app_id": APP_ID,
                                     "secret_sha256": hashlib.sha256(APP_SECRET.encode()).hexdigest()}]}, f)
        self.proc = subprocess.Popen(
            [binary, "--config", os.path.join(workdir, "config.json")],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "broker.log"), "w"),
            env={**os.environ, "RUST_LOG": "warn"})
        if not (wait_port(self.port) and wait_port(self.api)):
            self.proc.kill()
            raise SystemExit("skyport-broker did not start")

    def call(self, method, path, body=None):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api}/api/v4{path}", method=method,
            data=None if body is None else json.dumps(body).encode())
        token = base64.b64encode(f"{APP_ID}:{APP_SECRET}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def rule(self, actions, topic="bench/rules/#"):
        sql = f'SELECT payload.n AS n, clientid FROM "{topic}"'
        return self.call("POST", "/rules", {"rawsql": sql, "actions": actions})["data"]["id"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def publish(port, messages, qos=1):
    payload = json.dumps({"n": 1, "pad": "x" * 40})
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", TOPIC,
                    "-q", str(qos), "-m", payload, "--repeat", str(messages), "-i", "bench-pub"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def until(probe, expected, cap=300.0):
    """Polls probe() until it reaches expected; the time it got there."""
    deadline = time.time() + cap
    while time.time() < deadline:
        if probe() >= expected:
            return time.perf_counter()
        time.sleep(0.01)
    return None


def sink_rate(node, messages, probe):
    start = time.perf_counter()
    publish(node.port, messages)
    end = until(probe, messages)
    return None if end is None else messages / (end - start)


class Hook(http.server.BaseHTTPRequestHandler):
    count = 0
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with Hook.lock:
            Hook.count += 1
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def redis_cli(*args):
    return subprocess.run(["redis-cli", *args], capture_output=True, text=True).stdout.strip()


def psql(sql):
    url = os.environ.get("SKYPORT_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432") + "/test"
    return subprocess.run(["psql", url, "-tAq", "-c", sql], capture_output=True, text=True,
                          check=True).stdout.strip()


def measure_sinks(binary, messages):
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        node = Node(binary, tmp)
        try:
            # republish: a subscriber counts the republished messages.
            node.rule([{"name": "republish", "params": {"target_topic": "bench/out", "target_qos": 1}}])
            sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(node.port),
                                    "-t", "bench/out", "-q", "1", "-C", str(messages), "-W", "300"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.7)
            start = time.perf_counter()
            publish(node.port, messages)
            sub.wait(timeout=330)
            results["republish"] = messages / (time.perf_counter() - start)
            for r in node.call("GET", "/rules")["data"]:
                node.call("DELETE", f"/rules/{r['id']}")

            # webhook
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            hook = node.call("POST", "/resources", {"type": "web_hook", "config": {
                "url": f"http://127.0.0.1:{server.server_port}/hook"}})["data"]["id"]
            webhook_messages = max(messages // 10, 100)
            rule = node.rule([{"name": "data_to_webserver", "params": {"$resource": hook}}])
            results["webhook"] = sink_rate(node, webhook_messages, lambda: Hook.count)
            node.call("DELETE", f"/rules/{rule}")
            server.shutdown()

            # Redis
            key = f"skyport-bench:{os.getpid()}"
            redis = node.call("POST", "/resources", {"type": "backend_redis_single",
                                                     "config": {"server": "127.0.0.1:6379"}})["data"]["id"]
            rule = node.rule([{"name": "data_to_redis", "params": {
                "$resource": redis, "cmd": f"RPUSH {key} ${{n}}"}}])
            results["redis"] = sink_rate(node, messages, lambda: int(redis_cli("LLEN", key) or 0))
            node.call("DELETE", f"/rules/{rule}")
            redis_cli("DEL", key)

            # PostgreSQL
            table = f"skyport_bench_{os.getpid()}"
            psql(f"CREATE TABLE {table} (n integer, clientid text)")
            try:
                pg = node.call("POST", "/resources", {"type": "backend_pgsql", "config": {
                    "server": "127.0.0.1:5432", "database": "test", "user": "postgres"}})["data"]["id"]
                rule = node.rule([{"name": "data_to_pgsql", "params": {
                    "$resource": pg, "batch_size": 500,
                    "sql": f"INSERT INTO {table}(n, clientid) VALUES (${{n}}, ${{clientid}})"}}])
                results["postgresql"] = sink_rate(
                    node, messages, lambda: int(psql(f"SELECT count(*) FROM {table}") or 0))
                node.call("DELETE", f"/rules/{rule}")
            finally:
                psql(f"DROP TABLE {table}")
        finally:
            node.stop()
    return results


def pubsub_rate(port, messages):
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", TOPIC,
                            "-q", "1", "-C", str(messages), "-W", "120"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.7)
    start = time.perf_counter()
    publish(port, messages)
    sub.wait(timeout=150)
    return messages / (time.perf_counter() - start)


def measure_cost(binary, messages, rounds):
    rates = {0: [], 1: [], 10: []}
    with tempfile.TemporaryDirectory() as tmp:
        node = Node(binary, tmp)
        key = f"skyport-bench-cost:{os.getpid()}"
        redis = node.call("POST", "/resources", {"type": "backend_redis_single",
                                                 "config": {"server": "127.0.0.1:6379"}})["data"]["id"]
        try:
            for _ in range(rounds):
                for count in (0, 1, 10):
                    for r in node.call("GET", "/rules")["data"]:
                        node.call("DELETE", f"/rules/{r['id']}")
                    for i in range(count):
                        node.rule([{"name": "data_to_redis", "params": {
                            "$resource": redis, "cmd": f"INCR {key}:{i}"}}])
                    rates[count].append(pubsub_rate(node.port, messages))
        finally:
            node.stop()
            for i in range(10):
                redis_cli("DEL", f"{key}:{i}")
    return {k: statistics.median(v) for k, v in rates.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker-bin", default="target/release/skyport-broker")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out-dir", default="bench/results")
    args = parser.parse_args()

    sinks = measure_sinks(args.broker_bin, args.messages)
    cost = measure_cost(args.broker_bin, args.messages, args.rounds)
    result = {"machine": platform.platform(), "cpus": os.cpu_count(),
              "messages": args.messages, "sinks_msgs_per_s": sinks,
              "pubsub_msgs_per_s_by_rules": cost,
              "pubsub_ratio_vs_no_rules": {k: v / cost[0] for k, v in cost.items()}}
    print(json.dumps(result, indent=2))
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "rules.json"), "w") as f:
        json.dump(result, f, indent=2)
    fmt = lambda x: "n/a" if x is None else f"{x:,.0f}"
    lines = ["# Rule engine throughput", "",
             f"{args.messages} QoS 1 messages, {os.cpu_count()} cores, `bench/rules.sh`.", "",
             "| sink | matched msgs/s |", "|---|---|"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in sinks.items()]
    lines += ["", "| active rules | pub/sub msgs/s | vs none |", "|---|---|---|"]
    lines += [f"| {k} | {fmt(v)} | {v / cost[0]:.2f} |" for k, v in cost.items()]
    with open(os.path.join(args.out_dir, "rules.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
