#!/usr/bin/env bash
# One adapterd Infer request from the shell, with mosquitto_rr (Debian: apt-get install mosquitto-clients).
#
#   examples/shell/infer.sh HOST PORT WORKER TEXT [ADAPTER]
#   examples/shell/infer.sh 127.0.0.1 1883 demo "lock the front door" intent
#
# prints the reply JSON on one line, e.g.
#   {"status":"OK","adapter":"intent","version":"v1","label":"security","logits":[...],"latencyMs":3.1,"tokens":6}
#
# Environment: TIMEOUT seconds to wait for the reply (default 10); SENSOR=TYPE/ID appends request context to the
# topic (adapterd/v1/WORKER/infer/TYPE/ID), which adapterd's routes can match on.
# Exit codes: 0 reply with status OK; 1 reply with another status (the reply is still printed); 2 bad arguments or
# no connection to the broker; 3 no reply within TIMEOUT.
set -euo pipefail

if [ $# -lt 4 ] || [ $# -gt 5 ]; then
    echo "usage: $0 HOST PORT WORKER TEXT [ADAPTER]" >&2
    exit 2
fi
host=$1 port=$2 worker=$3 text=$4 adapter=${5:-}
timeout=${TIMEOUT:-10}

# The body is JSON: {"text": ..., "adapter": ...}. Escape what JSON requires in a string (backslash, quote and
# the common control characters); only "text" is required.
json_string() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    printf '"%s"' "$s"
}
body="{\"text\":$(json_string "$text")"
if [ -n "$adapter" ]; then body+=",\"adapter\":$(json_string "$adapter")"; fi
body+="}"

topic="adapterd/v1/$worker/infer${SENSOR:+/$SENSOR}"
# A response topic and correlation data of our own: adapterd answers a second request with the same pair from
# its duplicate cache (it takes it for a QoS 1 redelivery) instead of running it.
id="infer-sh-$$-$RANDOM$RANDOM"
response="adapterd/v1/clients/$id/replies"

# mosquitto_rr speaks MQTT 5 request/reply: it subscribes to the response topic (-e), waits for the SUBACK,
# publishes the request with that Response Topic, then prints the first message on the topic. -D adds the other
# properties adapterd reads: Correlation Data (echoed in the reply), Content Type, and a Message Expiry so the
# worker does not run a request we have stopped waiting for. --nodelay sets TCP_NODELAY: without it, Nagle's
# algorithm and delayed ACKs can add tens of milliseconds to each small message.
set +e
reply="$(mosquitto_rr -V 5 -h "$host" -p "$port" --nodelay -q 1 -i "$id" \
    -t "$topic" -e "$response" -m "$body" -W "$timeout" \
    -D publish correlation-data "$id" \
    -D publish content-type application/json \
    -D publish message-expiry-interval "$timeout")"
code=$?
set -e
case $code in
    0) ;;
    27) echo "$0: no reply from worker '$worker' within $timeout s" >&2; exit 3 ;;  # MOSQ_ERR_TIMEOUT
    *) echo "$0: mosquitto_rr failed (exit $code)" >&2; exit 2 ;;
esac

printf '%s\n' "$reply"
# The status is in the body too ("status":"OK", or a gRPC code name and "error" with the reason).
if [[ $reply =~ \"status\":\"([A-Z_]+)\" ]] && [ "${BASH_REMATCH[1]}" = OK ]; then exit 0; fi
echo "$0: the worker answered ${BASH_REMATCH[1]:-without a status}" >&2
exit 1
