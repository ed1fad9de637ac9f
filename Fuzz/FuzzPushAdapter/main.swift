// libFuzzer target: the PushAdapter handler through the worker's RPC server, without a broker: a push's begin, chunk, commit and abort steps (the manifest, its pieces and signature, chunk indices and bytes).
// Every input gets one typed reply, never a trap. Built by scripts/fuzz with -sanitize=fuzzer.
import FuzzSupport

runHandlerFuzzer(methods: ["PushAdapter"])
