// libFuzzer target: the FederatedRound handler through the worker's RPC server, without a broker: offers (plans,
// sizes, digests, chunk sizes), global chunks, train and collect steps for rounds that were or were not offered.
// Every input gets one typed reply, never a trap. Built by scripts/fuzz with -sanitize=fuzzer.
import FuzzSupport

runHandlerFuzzer(methods: ["FederatedRound"])
