import AdapterEngine
import ArgumentParser

/// adapterctl: the command-line client of adapterd.
@main
struct Adapterctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapterctl",
        abstract: "Run and control adapterd, the LoRA-adapter edge inference worker.",
        subcommands: [RunCommand.self])

    static func main() {
        BLASRuntime.restartWithOptimizedKernelsIfNeeded()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}
