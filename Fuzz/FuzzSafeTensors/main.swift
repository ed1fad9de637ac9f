// libFuzzer target: the safetensors reader on arbitrary bytes (written to a file, as adapters arrive). It must
// refuse with a typed error or read every tensor it validated; anything else (a trap, an out-of-bounds read under
// the sanitizer) is a finding. Built by scripts/fuzz with -sanitize=fuzzer.
import AdapterEngine
import Foundation

let path = "/dev/shm/adapterd-fuzz-safetensors-\(getpid())"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes: data, count: size)) else { return 0 }
    defer { unlink(path) }
    guard let file = try? SafeTensorsFile(path: path) else { return 0 }
    for info in file.tensors.values { _ = try? file.tensor(info) }
    return 0
}

// SwiftPM gives an executable its own entry point, so libFuzzer's driver is started from it.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>, _ body: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt
var (argc, argv) = (CommandLine.argc, Optional(CommandLine.unsafeArgv))
exit(runDriver(&argc, &argv, fuzz))
