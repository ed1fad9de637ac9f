// libFuzzer target: the SetRoute handler through the worker's RPC server, without a broker: topic filters, sensor types, metadata matches, priorities, routers and minimum confidences.
// Every input gets one typed reply, never a trap. Built by scripts/fuzz with -sanitize=fuzzer.
import FuzzSupport

runHandlerFuzzer(methods: ["SetRoute"])
