// libFuzzer target: the SetRoute handler through the worker's RPC server, without a broker: topic filters, sensor
// types, metadata matches, priorities, routers and minimum confidences. Every input gets one typed reply, never a
// trap. Built by scripts/fuzz with -sanitize=fuzzer.
import FuzzSupport

let harness = HandlerHarness()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    harness.run(method: "SetRoute", data, size)
    return 0
}

runFuzzer(fuzz)
