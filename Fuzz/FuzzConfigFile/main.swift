// libFuzzer target: the configuration file (YAML or JSON) through SettingSources and WorkerConfiguration, the path
// adapterd's start takes: a SettingError naming the problem or a configuration, never a trap. Built by
// scripts/fuzz with -sanitize=fuzzer.
import AdapterdCore
import Foundation

let path = "/dev/shm/adapterd-fuzz-config-\(getpid()).yaml"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes: data, count: size)) else { return 0 }
    defer { unlink(path) }
    // A password given as a flag: the file's passwordFile is then never read (that would fuzz the filesystem).
    guard let settings = try? SettingSources(arguments: ["password": ["x"]], environment: [:], configFile: path) else { return 0 }
    _ = try? WorkerConfiguration(settings: settings, brokerURL: "mqtt://127.0.0.1:1")
    return 0
}

// SwiftPM gives an executable its own entry point, so libFuzzer's driver is started from it.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>, _ body: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt
var (argc, argv) = (CommandLine.argc, Optional(CommandLine.unsafeArgv))
exit(runDriver(&argc, &argv, fuzz))
