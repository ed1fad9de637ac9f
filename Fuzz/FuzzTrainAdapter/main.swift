// libFuzzer target: the TrainAdapter handler through the worker's RPC server, without a broker: a training's examples and options (rank, alpha, epochs, batch size, learning rate, targets).
// Every input gets one typed reply, never a trap. Built by scripts/fuzz with -sanitize=fuzzer.
import FuzzSupport

runHandlerFuzzer(methods: ["TrainAdapter"])
