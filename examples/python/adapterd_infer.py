#!/usr/bin/env python3
"""Ask an adapterd worker for inferences over MQTT 5, the way a sensor or an app would.

    adapterd_infer.py --broker mqtt://127.0.0.1:1883 --worker demo --adapter intent \\
        --sensor keypad/k7 "lock the front door" "turn on the lights"

prints one line of reply JSON per TEXT, e.g.

    {"status":"OK","adapter":"intent","version":"v1","label":"security","logits":[...],"latencyMs":3.1,"tokens":6}

adapterd's RPC over MQTT 5 (docs/rpc.md):

- a request is published to  adapterd/v1/{worker}/infer[/{sensorType}/{sensorId}]  with a JSON body
  {"text": ..., "adapter": ...} (only "text" is required; without an adapter the reply is an embedding);
- it carries the MQTT 5 properties Response Topic (where the reply goes), Correlation Data (bytes the reply
  echoes, so replies can be matched to requests) and Content Type application/json;
- the reply arrives on the response topic with the same correlation data, a JSON body and a user property
  "status" holding the gRPC status name ("OK", "NOT_FOUND", "INVALID_ARGUMENT", ...).

Exit codes: 0 every request answered OK; 1 a reply with another status (its error is printed to stderr);
2 bad arguments or no connection to the broker; 3 no reply within --timeout.

Only dependency: paho-mqtt 2.x (pip install -r requirements.txt).
"""

import argparse
import json
import socket
import sys
import time
import uuid
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

EXIT_OK, EXIT_STATUS, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3


class Timeout(Exception):
    """Nothing arrived in time."""


class InferClient:
    """One MQTT 5 connection to the broker, one private response topic, any number of Infer calls."""

    def __init__(self, host, port, worker, timeout):
        self.worker = worker
        self.timeout = timeout
        client_id = "infer-py-" + uuid.uuid4().hex[:12]
        # A topic only this client listens on. adapterd treats a second request with the same response topic and
        # correlation data as a duplicate (a QoS 1 redelivery) and answers it from its cache, so both are unique.
        self.response_topic = f"adapterd/v1/clients/{client_id}/replies"
        self.replies = {}  # correlation data -> the reply message that carried it
        self.connected = None  # None while waiting for CONNACK, then True or False
        self.subscribed = None  # None while waiting for SUBACK, then True or False
        self.subscribe_mid = None

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_socket_open = self._on_socket_open
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

        self.client.connect(host, port, keepalive=30)
        self._wait_until(lambda: self.connected is not None, "CONNACK from the broker")
        if not self.connected:
            raise ConnectionError(f"the broker refused the connection: {self.connect_reason}")

        # Subscribe to the response topic *before* sending any request, and wait for the SUBACK: a reply published
        # before the subscription is in place would be dropped by the broker.
        _, self.subscribe_mid = self.client.subscribe(self.response_topic, qos=1)
        self._wait_until(lambda: self.subscribed is not None, "SUBACK from the broker")
        if not self.subscribed:
            raise ConnectionError(f"the broker refused the subscription to {self.response_topic}")

    # -- paho callbacks (all run inside client.loop(), on this thread) --

    @staticmethod
    def _on_socket_open(client, userdata, sock):
        # Request/reply is small messages both ways. With Nagle's algorithm on (the socket default) each one can
        # wait for the peer's delayed ACK: adapterd's Benchmarks/README.md measured 88 ms bare round trips through mosquitto
        # without TCP_NODELAY against 0.13-0.17 ms with it. paho calls this right after opening the socket, before
        # it sends CONNECT.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connected = not reason_code.is_failure
        self.connect_reason = reason_code

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if mid == self.subscribe_mid:
            self.subscribed = all(not code.is_failure for code in reason_codes)

    def _on_message(self, client, userdata, message):
        correlation = getattr(message.properties, "CorrelationData", None)
        if correlation is not None:
            self.replies[bytes(correlation)] = message

    # -- requests --

    def infer(self, text, adapter=None, sensor=None):
        """Sends one Infer request and waits for its reply; returns (status, reply body as a dict)."""
        topic = f"adapterd/v1/{self.worker}/infer"
        if sensor:
            topic += "/" + sensor  # request context, e.g. keypad/k7: routes can match on it

        body = {"text": text}
        if adapter:
            body["adapter"] = adapter

        correlation = uuid.uuid4().bytes  # unique per request
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = self.response_topic
        properties.CorrelationData = correlation
        properties.ContentType = "application/json"
        # A request that has waited longer than we are willing to wait is not worth running: adapterd drops it
        # with DEADLINE_EXCEEDED once its message expiry has passed.
        properties.MessageExpiryInterval = max(1, int(self.timeout))

        self.client.publish(topic, json.dumps(body), qos=1, properties=properties)
        self._wait_until(lambda: correlation in self.replies, f"reply on {self.response_topic}")

        message = self.replies.pop(correlation)
        user_properties = dict(getattr(message.properties, "UserProperty", []))
        reply = json.loads(message.payload)
        # The status is both a user property and a field of the body; the property is there whatever the encoding.
        return user_properties.get("status", reply.get("status", "UNKNOWN")), reply

    def close(self):
        self.client.disconnect()

    def _wait_until(self, condition, what):
        """Runs paho's network loop on this thread until `condition()` holds, for at most the timeout."""
        deadline = time.monotonic() + self.timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"no {what} within {self.timeout:g} s")
            rc = self.client.loop(timeout=min(remaining, 0.5))
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise ConnectionError(f"lost the connection to the broker: {mqtt.error_string(rc)}")


def parse_arguments():
    parser = argparse.ArgumentParser(description="Send Infer requests to an adapterd worker over MQTT 5 and print the replies.")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://HOST[:PORT] (default %(default)s)")
    parser.add_argument("--worker", required=True, help="the worker's id (adapterd --worker-id)")
    parser.add_argument("--adapter", help="adapter name; without one the worker's routes decide, or it returns an embedding")
    parser.add_argument("--sensor", metavar="TYPE/ID", help="request context appended to the topic, e.g. keypad/k7")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply (default %(default)s)")
    parser.add_argument("texts", nargs="+", metavar="TEXT", help="texts to send, one request each, in order")
    arguments = parser.parse_args()

    url = urlparse(arguments.broker)
    if url.scheme != "mqtt" or not url.hostname:
        parser.error(f"--broker must look like mqtt://HOST[:PORT], not {arguments.broker!r}")
    arguments.host, arguments.port = url.hostname, url.port or 1883
    if arguments.sensor and (any(c in arguments.sensor for c in "+#") or arguments.sensor.strip("/") != arguments.sensor):
        parser.error("--sensor must be TYPE/ID without wildcards or leading/trailing '/'")
    if arguments.timeout <= 0:
        parser.error("--timeout must be positive")
    return arguments


def main():
    arguments = parse_arguments()
    try:
        client = InferClient(arguments.host, arguments.port, arguments.worker, arguments.timeout)
    except Timeout as error:
        print(f"adapterd_infer: {error}", file=sys.stderr)
        return EXIT_TIMEOUT
    except (OSError, ConnectionError) as error:
        print(f"adapterd_infer: cannot connect to {arguments.broker}: {error}", file=sys.stderr)
        return EXIT_USAGE

    try:
        # One connection, the texts one after another.
        for text in arguments.texts:
            status, reply = client.infer(text, adapter=arguments.adapter, sensor=arguments.sensor)
            if status != "OK":
                print(f"adapterd_infer: {status}: {reply.get('error', '')}", file=sys.stderr)
                return EXIT_STATUS
            print(json.dumps(reply, separators=(",", ":"), ensure_ascii=False), flush=True)
        return EXIT_OK
    except Timeout as error:
        print(f"adapterd_infer: {error} (is worker {arguments.worker!r} running on this broker?)", file=sys.stderr)
        return EXIT_TIMEOUT
    except ConnectionError as error:
        print(f"adapterd_infer: {error}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
