"""Publish/subscribe exchange with paho-mqtt (a client outside the rumqtt family).

Subscribes to --topic, publishes --payload until it comes back (bounded), prints the
received payload and exits 0; exits 1 with a reason otherwise.
"""
import argparse
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt

parser = argparse.ArgumentParser()
parser.add_argument("--host", required=True)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--transport", choices=["tcp", "websockets"], default="tcp")
parser.add_argument("--version", choices=["mqttv311", "mqttv5", "mqttv31"], default="mqttv311")
parser.add_argument("--qos", type=int, default=1)
parser.add_argument("--topic", required=True)
parser.add_argument("--payload", required=True)
parser.add_argument("--cafile")
args = parser.parse_args()

protocol = {"mqttv311": mqtt.MQTTv311, "mqttv5": mqtt.MQTTv5, "mqttv31": mqtt.MQTTv31}[args.version]
client = mqtt.Client(
    mqtt.CallbackAPIVersion.VERSION2,
    client_id=f"paho-{time.time_ns()}",
    protocol=protocol,
    transport=args.transport,
)
if args.transport == "websockets":
    client.ws_set_options(path="/mqtt")
if args.cafile:
    client.tls_set(ca_certs=args.cafile, tls_version=ssl.PROTOCOL_TLS_CLIENT)

received = threading.Event()
subscribed = threading.Event()
result = {}


def on_connect(client, userdata, flags, reason_code, properties):
    if reason_code.is_failure:
        result["error"] = f"connect refused: {reason_code}"
        received.set()
        return
    client.subscribe(args.topic, qos=args.qos)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    if any(rc.is_failure for rc in reason_codes):
        result["error"] = f"subscribe refused: {reason_codes}"
        received.set()
        return
    subscribed.set()


def on_message(client, userdata, message):
    result["payload"] = message.payload.decode()
    received.set()


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
try:
    client.connect(args.host, args.port, keepalive=30)
except Exception as exc:  # noqa: BLE001 - report any connection failure
    print(f"connect failed: {exc!r}", file=sys.stderr)
    sys.exit(1)
client.loop_start()
if not subscribed.wait(15) and "error" not in result:
    print("never subscribed", file=sys.stderr)
    sys.exit(1)
client.publish(args.topic, args.payload, qos=args.qos)
received.wait(15)
client.loop_stop()
client.disconnect()
if "payload" in result:
    print(result["payload"])
    sys.exit(0)
print(result.get("error", "no message received"), file=sys.stderr)
sys.exit(1)
