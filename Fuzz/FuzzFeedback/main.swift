// libFuzzer target: the Feedback handler through the worker's RPC server, without a broker: a labelled text stored for a later training, within the feedback bounds.
// Every input gets one typed reply, never a trap. Built by scripts/fuzz with -sanitize=fuzzer.
import FuzzSupport

runHandlerFuzzer(methods: ["Feedback"])
