import AdapterEngine
import ArgumentParser

/// adapterctl: the command-line client of adapterd.
@main
struct Adapterctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapterctl",
        abstract: "Run and control adapterd, the LoRA-adapter edge inference worker.",
        subcommands: [RunCommand.self, TrainCommand.self, FleetCommand.self, InferCommand.self, AdaptersCommand.self, RoutesCommand.self, RouterCommand.self, RouteCommand.self, StatusCommand.self, KeysCommand.self, TopCommand.self])

    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
