#!/usr/bin/env python3
"""Idle-connection memory of one skyport-broker at the largest count this machine allows.

Usage: python3 bench/idle.py --broker-bin target/release/skyport-broker --connections 19000

Starts the broker (tcp listener, anonymous), opens N raw MQTT 3.1.1 connections (CONNECT,
keep-alive 600 s, CONNACK, then silence) from this process, and prints the growth of the
broker's VmRSS per connection. N is bounded by the open-files limit of this process and of
the broker's (each holds one descriptor per connection).
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import tempfile
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker-bin", required=True)
    ap.add_argument("--connections", type=int, default=19000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="skyport-idle-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        api = s.getsockname()[1]
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump({"deployment_id": "idle", "listeners": {"tcp": f"127.0.0.1:{port}",
                                                         "api": f"127.0.0.1:{api}"}}, f)
    with open(os.path.join(work, "security.json"), "w") as f:
        json.dump({"authentication": {"allow_anonymous": True}}, f)
    broker = subprocess.Popen([args.broker_bin, "--config", os.path.join(work, "config.json")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        before = rss_kib(broker.pid)
        conns = []
        for i in range(args.connections):
            cid = f"idle-{i}".encode()
            body = b"\x00\x04MQTT\x04\x02" + struct.pack(">H", 600) + struct.pack(">H", len(cid)) + cid
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(bytes([0x10, len(body)]) + body)
            if s.recv(4)[:2] != b"\x20\x02":
                raise SystemExit(f"connection {i}: no CONNACK")
            conns.append(s)
        time.sleep(3)
        after = rss_kib(broker.pid)
        per = (after - before) / len(conns)
        print(f"{len(conns)} idle connections: RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB, "
              f"{per:.2f} KiB per connection, {1024 * 1024 / per:.0f} per GiB")
    finally:
        broker.kill()
        broker.wait()


if __name__ == "__main__":
    main()
