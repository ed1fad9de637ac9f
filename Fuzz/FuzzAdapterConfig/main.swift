// libFuzzer target: PEFT's adapter_config.json reader on arbitrary bytes: a typed AdapterError or a config, never
// a trap. Built by scripts/fuzz with -sanitize=fuzzer.
import Foundation
import AdapterEngine

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = try? LoRAConfig(json: Array(UnsafeBufferPointer(start: data, count: size)), adapter: "fuzz")
    return 0
}

// SwiftPM gives an executable its own entry point, so libFuzzer's driver is started from it.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>, _ body: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt
var (argc, argv) = (CommandLine.argc, Optional(CommandLine.unsafeArgv))
exit(runDriver(&argc, &argv, fuzz))
