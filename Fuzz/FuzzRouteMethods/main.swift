// libFuzzer target: the route and router methods through the worker's RPC server, without a broker: the first
// byte picks SetRoute, DeleteRoute, ListRoutes, LoadAdapter (a router or adapter directory by path) or ClearSession
// (router choices are kept per session), the rest is the request. Every input gets one typed reply, never a trap.
// Built by scripts/fuzz with -sanitize=fuzzer.
import FuzzSupport

let harness = HandlerHarness()
let methods = ["SetRoute", "DeleteRoute", "ListRoutes", "LoadAdapter", "ClearSession"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    harness.run(method: methods[Int(data[0]) % methods.count], data + 1, size - 1)
    return 0
}

runFuzzer(fuzz)
