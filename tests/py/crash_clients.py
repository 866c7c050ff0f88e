"""paho-mqtt clients for the broker crash tests (tests/tests/crash.rs).

A small CLI; every subcommand prints JSON lines on stdout (one object per line, flushed)
and exits 0 when it did its part, 1 with {"error": ...} otherwise. Every wait is bounded.

  subscribe-once  connect with a persistent session, subscribe at QoS 1, disconnect
  publish         publish --count QoS 1 messages (payload = sequence number), waiting for
                  every PUBACK
  drain           reconnect a persistent session (retrying the connect), collect
                  messages until --expect distinct sequence numbers arrived
  flow            an online persistent subscriber and a paced publisher, both
                  reconnecting automatically; progress lines {"acked": n} let the caller
                  kill the broker mid-flow; ends with one {"result": ...} line

Standard library and paho-mqtt 2.2 only.
"""
import argparse
import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_print_lock = threading.Lock()


def emit(obj):
    with _print_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def fail(reason, **extra):
    emit({"error": reason, **extra})
    sys.exit(1)


def protocol_of(version):
    return {"mqttv311": mqtt.MQTTv311, "mqttv5": mqtt.MQTTv5}[version]


def new_client(args, client_id, persistent):
    """A client; `persistent` asks for a session that outlives the connection."""
    protocol = protocol_of(args.version)
    kwargs = {}
    if protocol != mqtt.MQTTv5:
        kwargs["clean_session"] = not persistent
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        **kwargs,
    )
    return client


def connect_options(args, persistent):
    """Keyword arguments for Client.connect (v5: Clean Start and Session Expiry)."""
    if protocol_of(args.version) != mqtt.MQTTv5:
        return {}
    props = Properties(PacketTypes.CONNECT)
    if persistent:
        props.SessionExpiryInterval = args.session_expiry
    return {"clean_start": not persistent, "properties": props}


class Connection:
    """Tracks CONNACKs and disconnects of one client (callbacks run in paho's thread)."""

    def __init__(self, client, who):
        self.who = who
        self.connected = threading.Event()
        self.refused = None
        self.session_present = None
        self.connects = 0
        self.disconnects = 0
        client.on_connect = self.on_connect
        client.on_disconnect = self.on_disconnect

    def on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.refused = str(reason_code)
            emit({"event": "connect_refused", "who": self.who, "reason": str(reason_code)})
            return
        self.connects += 1
        self.session_present = bool(flags.session_present)
        emit(
            {
                "event": "connected",
                "who": self.who,
                "session_present": self.session_present,
                "connects": self.connects,
            }
        )
        self.connected.set()

    def on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnects += 1
        self.connected.clear()
        emit({"event": "disconnected", "who": self.who, "reason": str(reason_code)})


def connect_retrying(client, conn, args, persistent, timeout):
    """Connects (blocking connect + loop thread), retrying until a CONNACK accepts us or
    `timeout` seconds pass. Returns the number of attempts."""
    deadline = time.monotonic() + timeout
    attempts = 0
    last = None
    while time.monotonic() < deadline:
        attempts += 1
        conn.refused = None
        try:
            client.connect(args.host, args.port, keepalive=30, **connect_options(args, persistent))
        except OSError as e:
            last = repr(e)
            time.sleep(0.25)
            continue
        client.loop_start()
        waited = time.monotonic() + min(5.0, max(0.1, deadline - time.monotonic()))
        while time.monotonic() < waited and not conn.connected.is_set() and conn.refused is None:
            time.sleep(0.02)
        if conn.connected.is_set():
            return attempts
        last = conn.refused or "no CONNACK"
        client.loop_stop()
        try:
            client.disconnect()
        except Exception:  # noqa: BLE001 - best effort before retrying
            pass
        time.sleep(0.25)
    fail(f"could not connect within {timeout}s", attempts=attempts, last=last)


def disconnect(client):
    client.disconnect()
    client.loop_stop()


# --- subscribe-once -------------------------------------------------------------------


def cmd_subscribe_once(args):
    client = new_client(args, args.client_id, persistent=True)
    conn = Connection(client, "subscriber")
    granted = threading.Event()
    result = {}

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        result["granted"] = [rc.value for rc in reason_codes]
        granted.set()

    client.on_subscribe = on_subscribe
    connect_retrying(client, conn, args, persistent=True, timeout=args.timeout)
    client.subscribe(args.filter, qos=1)
    if not granted.wait(args.timeout):
        fail("no SUBACK")
    disconnect(client)
    if any(code > 2 for code in result["granted"]):
        fail("subscription refused", granted=result["granted"])
    emit({"subscribed": args.filter, "granted": result["granted"]})


# --- publish --------------------------------------------------------------------------


def cmd_publish(args):
    client = new_client(args, args.client_id, persistent=False)
    conn = Connection(client, "publisher")
    connect_retrying(client, conn, args, persistent=False, timeout=args.timeout)
    infos = []
    for seq in range(args.start, args.start + args.count):
        info = client.publish(f"{args.topic}/{seq}", str(seq).encode(), qos=1)
        infos.append((seq, info))
    deadline = time.monotonic() + args.timeout
    acked = 0
    for seq, info in infos:
        remaining = deadline - time.monotonic()
        try:
            info.wait_for_publish(timeout=max(0.0, remaining))
        except (RuntimeError, ValueError) as e:
            fail(f"publish {seq} failed: {e}", acked=acked)
        if not info.is_published():
            fail(f"no PUBACK for {seq} within {args.timeout}s", acked=acked)
        acked += 1
    disconnect(client)
    emit({"acked": acked})


# --- drain ----------------------------------------------------------------------------


def cmd_drain(args):
    client = new_client(args, args.client_id, persistent=True)
    conn = Connection(client, "subscriber")
    lock = threading.Lock()
    received = []
    seen = set()
    complete = threading.Event()

    def on_message(client, userdata, message):
        seq = int(message.payload.decode())
        with lock:
            received.append({"seq": seq, "dup": bool(message.dup), "topic": message.topic})
            seen.add(seq)
            if len(seen) >= args.expect:
                complete.set()

    client.on_message = on_message
    attempts = connect_retrying(client, conn, args, persistent=True, timeout=args.connect_timeout)
    # No SUBSCRIBE: the session (and its subscription) must have survived.
    complete.wait(args.timeout)
    # A short grace period to see trailing duplicates.
    time.sleep(args.grace)
    disconnect(client)
    with lock:
        emit(
            {
                "drained": [r["seq"] for r in received],
                "dup_flags": [r["dup"] for r in received],
                "session_present": conn.session_present,
                "connect_attempts": attempts,
                "complete": complete.is_set(),
            }
        )


# --- flow -----------------------------------------------------------------------------


def watchdog(seconds):
    """Ends the process with an error line if it is still running after `seconds` (a
    hung client must not hang the test)."""

    def expire():
        emit({"error": f"still running after {seconds}s (watchdog)"})
        os._exit(2)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def cmd_flow(args):
    # Publishing, settling, waiting for the subscriber, plus margin for connects.
    watchdog(args.count / args.rate + args.settle + args.timeout + 2 * args.connect_timeout + 10)
    run = args.client_id
    filt = f"{args.topic}/#"

    # The subscriber: persistent session, QoS 1, paho's automatic reconnect. It subscribes
    # on its first connection only; later ones must find the session (session_present).
    sub = new_client(args, f"{run}-sub", persistent=True)
    sub_conn = Connection(sub, "subscriber")
    sub.reconnect_delay_set(min_delay=1, max_delay=2)
    received_lock = threading.Lock()
    received = []  # sequence numbers in arrival order
    subscribed = threading.Event()
    lost_session = []

    def sub_on_connect(client, userdata, flags, reason_code, properties):
        Connection.on_connect(sub_conn, client, userdata, flags, reason_code, properties)
        if reason_code.is_failure:
            return
        if sub_conn.connects == 1:
            client.subscribe(filt, qos=1)
        elif not flags.session_present:
            # The broker forgot the session: note it and subscribe again so the rest of
            # the run still says which messages were lost.
            lost_session.append(sub_conn.connects)
            client.subscribe(filt, qos=1)

    def sub_on_subscribe(client, userdata, mid, reason_codes, properties):
        emit({"event": "subscribed", "granted": [rc.value for rc in reason_codes]})
        subscribed.set()

    def sub_on_message(client, userdata, message):
        with received_lock:
            received.append(int(message.payload.decode()))

    sub.on_connect = sub_on_connect
    sub.on_subscribe = sub_on_subscribe
    sub.on_message = sub_on_message
    connect_retrying(sub, sub_conn, args, persistent=True, timeout=args.connect_timeout)
    if not subscribed.wait(10):
        fail("the subscriber got no SUBACK")

    # The publisher: clean session, paho's automatic reconnect; counts PUBACKs by mid.
    pub = new_client(args, f"{run}-pub", persistent=False)
    pub_conn = Connection(pub, "publisher")
    pub.reconnect_delay_set(min_delay=1, max_delay=2)
    pub.max_inflight_messages_set(50)
    pub.max_queued_messages_set(0)  # unlimited: messages published while away wait
    # on_publish runs in paho's thread while it holds its own message lock, so our lock
    # is never held around a paho call (that order would deadlock): PUBACKs are recorded
    # by mid and mapped to sequence numbers at the end (mids are unique below 65,536
    # messages).
    acked_lock = threading.Lock()
    seq_of_mid = {}
    acked_mids = []
    queued_while_away = []  # publish() found no connection: paho queued it for later
    publish_errors = {}

    def pub_on_publish(client, userdata, mid, reason_code, properties):
        with acked_lock:
            acked_mids.append(mid)
            n = len(acked_mids)
        if n % 10 == 0:
            emit({"acked": n})

    pub.on_publish = pub_on_publish
    connect_retrying(pub, pub_conn, args, persistent=False, timeout=args.connect_timeout)

    interval = 1.0 / args.rate
    start = time.monotonic()
    for seq in range(args.count):
        target = start + seq * interval
        now = time.monotonic()
        if target > now:
            time.sleep(target - now)
        info = pub.publish(f"{args.topic}/{seq}", str(seq).encode(), qos=1)
        with acked_lock:
            seq_of_mid[info.mid] = seq
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            queued_while_away.append(seq)
        elif info.rc != mqtt.MQTT_ERR_SUCCESS:
            publish_errors[seq] = str(info.rc)
    emit({"event": "published", "count": args.count, "seconds": round(time.monotonic() - start, 2)})

    # Wait (bounded) for the publisher's PUBACKs to settle, then for the subscriber to hold
    # every acknowledged sequence number.
    deadline = time.monotonic() + args.timeout
    settle = time.monotonic() + args.settle
    while time.monotonic() < min(deadline, settle):
        with acked_lock:
            if len(acked_mids) >= args.count:
                break
        time.sleep(0.1)
    while time.monotonic() < deadline:
        with acked_lock:
            want = {seq_of_mid[mid] for mid in acked_mids}
        with received_lock:
            have = set(received)
        if want <= have:
            break
        time.sleep(0.1)
    time.sleep(args.grace)

    disconnect(pub)
    # Leave the subscriber's session behind cleanly (it is the test's own session).
    disconnect(sub)
    with acked_lock:
        acked_final = [seq_of_mid[mid] for mid in acked_mids]
    with received_lock:
        received_final = list(received)
    emit(
        {
            "result": {
                "acked": acked_final,
                "received": received_final,
                "queued_while_away": queued_while_away,
                "publish_errors": publish_errors,
                "subscriber_connects": sub_conn.connects,
                "subscriber_lost_session_at": lost_session,
                "publisher_connects": pub_conn.connects,
            }
        }
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", choices=["mqttv311", "mqttv5"], default="mqttv311")
    parser.add_argument("--session-expiry", type=int, default=3600)
    parser.add_argument("--client-id", required=True)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("subscribe-once")
    p.add_argument("--filter", required=True)
    p.add_argument("--timeout", type=float, default=20)

    p = sub.add_parser("publish")
    p.add_argument("--topic", required=True, help="prefix; each message goes to <topic>/<seq>")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30)

    p = sub.add_parser("drain")
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--connect-timeout", type=float, default=45)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--grace", type=float, default=1.0)

    p = sub.add_parser("flow")
    p.add_argument("--topic", required=True, help="prefix; each message goes to <topic>/<seq>")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--rate", type=float, default=500)
    p.add_argument("--connect-timeout", type=float, default=20)
    p.add_argument("--settle", type=float, default=30, help="max wait for outstanding PUBACKs")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--grace", type=float, default=1.0)

    args = parser.parse_args()
    {
        "subscribe-once": cmd_subscribe_once,
        "publish": cmd_publish,
        "drain": cmd_drain,
        "flow": cmd_flow,
    }[args.command](args)


if __name__ == "__main__":
    main()
