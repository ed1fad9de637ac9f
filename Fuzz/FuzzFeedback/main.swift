// libFuzzer target: the Feedback handler through the worker's RPC server, without a broker: a labelled text stored for a later training, within the feedback bounds.
// Every input gets one typed reply, never a trap. Built by scripts/fuzz with -sanitize=fuzzer.
import FuzzSupport

let harness = HandlerHarness()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    harness.run(method: "Feedback", data, size)
    return 0
}

runFuzzer(fuzz)
