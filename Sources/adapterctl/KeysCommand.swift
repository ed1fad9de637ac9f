import AdapterFormats
import ArgumentParser
import Foundation

/// `adapterctl keys generate`.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Manage ed25519 keys for signed adapter pushes.", subcommands: [Generate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a key pair: PATH (private, mode 0600; for adapters push --sign) and PATH.pub (for the workers' security.trustedKeys).")
        @Option(help: "Private key file to write; the public key goes to the same path plus .pub.") var out: String
        @Flag(help: "Replace existing files.") var force = false

        func run() throws {
            let manager = FileManager.default
            for path in [out, out + ".pub"] where manager.fileExists(atPath: path) && !force {
                throw ValidationError("\(path) exists; pass --force to replace it")
            }
            let pair = SigningKeys.generate()
            guard manager.createFile(atPath: out, contents: Data((pair.privateKey + "\n").utf8), attributes: [.posixPermissions: 0o600]),
                  manager.createFile(atPath: out + ".pub", contents: Data((pair.publicKey + "\n").utf8), attributes: [.posixPermissions: 0o644])
            else { throw ValidationError("cannot write \(out) or \(out).pub") }
            print("key \(pair.keyID): private key \(out), public key \(out).pub")
        }
    }
}
