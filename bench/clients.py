#!/usr/bin/env python3
"""Throughput with third-party clients: mosquitto_pub -> N x mosquitto_sub.

Targets, measured interleaved in every round: Mosquitto (127.0.0.1:1883), bare rumqttd
(the throughput example re-executed with --serve-rumqttd) and skyport-broker (release
binary, tcp listener, anonymous, metering on). Scenarios:

  * QoS 0 fan-out 1 -> 4 (clean subscribers)
  * QoS 1 fan-out 1 -> 4, clean subscribers
  * QoS 1 fan-out 1 -> 4, persistent subscribers (clean_session=false): the durable
    session cost (skyport-broker commits QoS 1 messages for persistent sessions to its
    session store before acknowledging them)

One mosquitto_pub per round publishes the messages read from stdin (-l) over one
connection; each mosquitto_sub exits after its count (-C). The figure is deliveries per
second from the publisher's start to the last subscriber's exit, median over rounds.
Writes bench/results/clients.{json,md}. Run through bench/clients.sh.
"""
import argparse
import json
import re
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def wait_port(port, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_skyport(binary, workdir):
    port, api = free_port(), free_port()
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(
            {
                "deployment_id": "bench",
                "listeners": {"tcp": f"127.0.0.1:{port}", "api": f"127.0.0.1:{api}"},
            },
            f,
        )
    with open(os.path.join(workdir, "security.json"), "w") as f:
        # No queue limit in the way (bare rumqttd has none): what is measured is speed.
        json.dump({"authentication": {"allow_anonymous": True},
                   "sessions": {"max_queued_messages": 10_000_000}}, f)
    proc = subprocess.Popen(
        [binary, "--config", os.path.join(workdir, "config.json")],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(workdir, "broker.log"), "w"),
        env={**os.environ, "RUST_LOG": "warn"},
    )
    if not wait_port(port):
        proc.kill()
        raise SystemExit("skyport-broker did not start")
    return proc, port


def start_rumqttd(example):
    port = free_port()
    proc = subprocess.Popen(
        [example, "--serve-rumqttd", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if not wait_port(port):
        proc.kill()
        raise SystemExit("rumqttd did not start")
    return proc, port


PAYLOAD = "0123456789" * 6 + "abcd"  # 64 bytes
TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid):
    """CPU seconds (user + system) a process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def children_cpu_s():
    """CPU seconds of every child process this script has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pid_listening_on(port):
    """The pid of the process listening on 127.0.0.1:`port` (the machine's Mosquitto)."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    found = re.search(r"pid=(\d+)", out)
    return int(found.group(1)) if found else None


def run_round(port, broker_pid, qos, subscribers, messages, persistent, tag):
    topic = f"bench/{tag}"
    # How long a subscriber waits for its messages at most: durable delivery is bound by
    # the disk's fsync latency, which a shared machine can make much slower.
    wait = 90 if persistent else 15
    subs = []
    for i in range(subscribers):
        args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic,
                "-q", str(qos), "-C", str(messages), "-W", str(wait), "-F", "%U"]
        if persistent:
            args += ["-c", "-i", f"{tag}-s{i}"]
        subs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
    # Give every subscriber time to subscribe (nothing is measured yet).
    time.sleep(0.7)
    broker_cpu = process_cpu_s(broker_pid) if broker_pid else None
    clients_cpu = children_cpu_s()
    start = time.perf_counter()
    # --repeat publishes over one connection; (-l loses the lines still queued in the
    # client when stdin ends).
    pub = subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic,
         "-q", str(qos), "-m", PAYLOAD, "--repeat", str(messages)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    start_unix = time.time() - (time.perf_counter() - start)
    delivered = 0
    last = start_unix
    for sub in subs:
        try:
            out, _ = sub.communicate(timeout=wait + 45)
        except subprocess.TimeoutExpired:
            # mosquitto_sub 2.0.11 does not always honour -W once messages were lost.
            sub.kill()
            out, _ = sub.communicate()
        lines = out.splitlines()
        delivered += len(lines)
        if lines:
            # Each line is the delivery's Unix time (%U): the clock stops at the last one,
            # not when a subscriber that lost messages gives up waiting.
            last = max(last, float(lines[-1]))
    elapsed = last - start_unix
    # Where the CPU went while the round ran (2 cores shared by the broker and 5 clients).
    if broker_cpu is not None:
        broker_cpu = process_cpu_s(broker_pid) - broker_cpu
    clients_cpu = children_cpu_s() - clients_cpu
    if persistent:
        # End the persistent sessions (clean session, then leave).
        for i in range(subscribers):
            subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic,
                            "-i", f"{tag}-s{i}", "-E"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    return {"elapsed_s": elapsed, "delivered": delivered, "expected": subscribers * messages,
            "publisher_exit": pub.returncode,
            "broker_cpu_s": broker_cpu, "clients_cpu_s": clients_cpu,
            "msgs_per_s": delivered / elapsed if elapsed > 0 else 0.0}


def median_per_100k(rounds, key):
    values = [m[key] / m["delivered"] * 100_000 for m in rounds
              if m.get(key) is not None and m["delivered"]]
    return statistics.median(values) if values else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker-bin", required=True)
    ap.add_argument("--rumqttd-example", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--qos0-messages", type=int, default=100_000)
    ap.add_argument("--qos1-messages", type=int, default=20_000)
    ap.add_argument("--subscribers", type=int, default=4)
    ap.add_argument("--out-dir", default="bench/results")
    args = ap.parse_args()
    for tool in ("mosquitto_pub", "mosquitto_sub"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install mosquitto-clients)")
    if not wait_port(1883, 2):
        raise SystemExit("no Mosquitto on 127.0.0.1:1883")
    load_before = open("/proc/loadavg").read().split()[:3]
    work = tempfile.mkdtemp(prefix="skyport-bench-")
    skyport, skyport_port = start_skyport(args.broker_bin, work)
    rumqttd, rumqttd_port = start_rumqttd(args.rumqttd_example)
    targets = {"mosquitto": 1883, "rumqttd": rumqttd_port, "skyport-broker": skyport_port}
    pids = {"mosquitto": pid_listening_on(1883), "rumqttd": rumqttd.pid,
            "skyport-broker": skyport.pid}
    scenarios = [
        ("QoS 0 fan-out 1->%d" % args.subscribers, 0, args.qos0_messages, False),
        ("QoS 1 fan-out 1->%d, clean subscribers" % args.subscribers, 1, args.qos1_messages, False),
        ("QoS 1 fan-out 1->%d, persistent subscribers" % args.subscribers, 1, args.qos1_messages, True),
    ]
    results = {name: {t: [] for t in targets} for name, *_ in scenarios}
    try:
        for r in range(args.rounds):
            for name, qos, n, persistent in scenarios:
                for target, port in targets.items():
                    tag = f"r{r}-{target}-q{qos}{'p' if persistent else ''}-{os.getpid()}"
                    m = run_round(port, pids[target], qos, args.subscribers, n, persistent, tag)
                    results[name][target].append(m)
                    print(f"round {r} {name} {target}: {m['msgs_per_s']:.0f} msgs/s "
                          f"({m['delivered']}/{m['expected']})", file=sys.stderr)
    finally:
        skyport.kill()
        rumqttd.kill()
        skyport.wait()
        rumqttd.wait()
    load_after = open("/proc/loadavg").read().split()[:3]
    summary = {}
    for name, per_target in results.items():
        summary[name] = {}
        for target, rounds in per_target.items():
            summary[name][target] = {
                "median_msgs_per_s": statistics.median(m["msgs_per_s"] for m in rounds),
                "delivered": sum(m["delivered"] for m in rounds),
                "expected": sum(m["expected"] for m in rounds),
                # CPU seconds per 100k deliveries, median over rounds.
                "broker_cpu_per_100k": median_per_100k(rounds, "broker_cpu_s"),
                "clients_cpu_per_100k": median_per_100k(rounds, "clients_cpu_s"),
            }
    os.makedirs(args.out_dir, exist_ok=True)
    meta = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "rounds": args.rounds,
        "load_before": load_before,
        "load_after": load_after,
        "mosquitto": subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.splitlines()[0]
        if shutil.which("mosquitto") else "unknown",
    }
    with open(os.path.join(args.out_dir, "clients.json"), "w") as f:
        json.dump({"meta": meta, "summary": summary, "rounds": results}, f, indent=2)
    lines = [
        "# Throughput with third-party clients: mosquitto_pub -> mosquitto_sub",
        "",
        f"Generated {meta['generated']} by `bench/clients.sh` on {meta['cpus']} CPUs, Linux "
        f"{meta['kernel']}; {meta['mosquitto']}; median of {args.rounds} rounds, targets "
        f"interleaved in each round. Load average before: {' '.join(load_before)}, after: "
        f"{' '.join(load_after)}.",
        "",
        "One `mosquitto_pub --repeat N` publishes 64-byte messages over one connection; "
        f"{args.subscribers} `mosquitto_sub -C N` subscribers; msgs/s counts deliveries from "
        "the publisher's start to the last delivery (`mosquitto_sub -F %U` timestamps). "
        "Mosquitto is the machine's "
        "(127.0.0.1:1883, `/etc/mosquitto/mosquitto.conf`: it drops QoS 1 messages beyond "
        "1000 queued for a subscriber, which shows as delivered < expected), bare rumqttd runs "
        "with the old engine settings, skyport-broker is the release binary with metering on "
        "and no session queue limit. "
        "Persistent subscribers use `-c -i ID` (clean_session=false): on skyport-broker "
        "their QoS 1 messages are committed to the session store before the publisher's "
        "PUBACK — the durable-session cost is the difference between the two QoS 1 rows.",
        "",
        "| scenario | Mosquitto msgs/s | bare rumqttd msgs/s | skyport-broker msgs/s | skyport / Mosquitto | skyport / rumqttd |",
        "|---|---|---|---|---|---|",
    ]
    for name, per_target in summary.items():
        m = per_target["mosquitto"]
        q = per_target["rumqttd"]
        s = per_target["skyport-broker"]

        def cell(x):
            return f"{x['median_msgs_per_s']:.0f} ({x['delivered']}/{x['expected']})"

        def ratio(a, b):
            return f"{a['median_msgs_per_s'] / b['median_msgs_per_s']:.2f}x" if b["median_msgs_per_s"] else "n/a"

        lines.append(f"| {name} | {cell(m)} | {cell(q)} | {cell(s)} | {ratio(s, m)} | {ratio(s, q)} |")
    lines += [
        "",
        "Where the CPU goes: CPU seconds per 100k deliveries (median over rounds) of the "
        "broker process and of the 5 client processes together (`/proc/<pid>/stat` and "
        "`getrusage(RUSAGE_CHILDREN)` around each round). Where the clients use most of the "
        "2 cores, a cheaper broker cannot raise msgs/s much.",
        "",
        "| scenario | Mosquitto broker / clients | bare rumqttd broker / clients | skyport-broker broker / clients |",
        "|---|---|---|---|",
    ]

    def cpu(x):
        b, c = x["broker_cpu_per_100k"], x["clients_cpu_per_100k"]
        return f"{b:.2f} / {c:.2f}" if b is not None and c is not None else "n/a"

    for name, per_target in summary.items():
        lines.append(f"| {name} | {cpu(per_target['mosquitto'])} | {cpu(per_target['rumqttd'])} "
                     f"| {cpu(per_target['skyport-broker'])} |")
    lines.append("")
    with open(os.path.join(args.out_dir, "clients.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
