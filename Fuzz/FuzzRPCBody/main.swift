// libFuzzer target: the RPC body decoders (JSON and protobuf, chosen as the server does from the payload) for the
// inference and push requests, the two a sensor or a remote pusher sends most. A typed RPCError or a message,
// never a trap. Built by scripts/fuzz with -sanitize=fuzzer.
import Foundation
import AdapterdAPI
import MQTTRPC

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let payload = Array(UnsafeBufferPointer(start: data, count: size))
    for encoding in [RPCEncoding.detect(contentType: nil, payload: payload), .json, .protobuf].compactMap({ $0 }) {
        _ = try? RPCCodec.decode(Adapterd_V1_InferRequest.self, from: payload, encoding: encoding)
        _ = try? RPCCodec.decode(Adapterd_V1_PushAdapterRequest.self, from: payload, encoding: encoding)
        _ = try? RPCCodec.decode(Adapterd_V1_SetRouteRequest.self, from: payload, encoding: encoding)
    }
    return 0
}

// SwiftPM gives an executable its own entry point, so libFuzzer's driver is started from it.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>, _ body: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt
var (argc, argv) = (CommandLine.argc, Optional(CommandLine.unsafeArgv))
exit(runDriver(&argc, &argv, fuzz))
