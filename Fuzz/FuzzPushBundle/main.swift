// libFuzzer target: the push bundle reader on arbitrary bytes: a typed PushError or files unpacked inside the
// target directory, never a trap and never a path outside it. Built by scripts/fuzz with -sanitize=fuzzer.
import AdapterFormats
import Foundation

let root = "/dev/shm/adapterd-fuzz-bundle-\(getpid())"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let target = root + "/out"
    try? FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    do throws(PushError) {
        try AdapterBundle.unpack(UnsafeRawBufferPointer(start: data, count: size), into: target)
    } catch {
        return 0
    }
    // Everything it wrote must be inside the target.
    let written = (FileManager.default.enumerator(atPath: root)?.allObjects as? [String]) ?? []
    precondition(written.allSatisfy { $0 == "out" || $0.hasPrefix("out/") }, "a bundle wrote outside its directory: \(written)")
    return 0
}

// SwiftPM gives an executable its own entry point, so libFuzzer's driver is started from it.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>, _ body: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt
var (argc, argv) = (CommandLine.argc, Optional(CommandLine.unsafeArgv))
exit(runDriver(&argc, &argv, fuzz))
