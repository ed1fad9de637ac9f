import AdapterdClient
import ArgumentParser
import Foundation
import MQTTRPC

/// The broker and the credentials to reach it, with their environment defaults; shared by the RPC subcommands
/// (`BrokerOptions`) and the fleet commands.
struct BrokerLogin: ParsableArguments {
    @Option(help: "Broker URL (default: $ADAPTERD_BROKER or mqtt://127.0.0.1:1883).")
    var broker: String?

    @Option(help: "Broker user name (default: $ADAPTERCTL_USERNAME).")
    var username: String?

    @Option(name: .customLong("password-file"), help: "File whose first line is the broker password (default: $ADAPTERCTL_PASSWORD_FILE).")
    var passwordFile: String?

    @Option(name: .customLong("tls-ca"), help: "CA file for the broker's certificate (default: $ADAPTERCTL_TLS_CA; mqtts:// uses the system's CAs without one).")
    var tlsCA: String?

    /// The broker URL, user name, password and CA file, each from its option or else its environment variable.
    func resolved() throws -> (url: String, username: String?, password: String?, tlsCAFile: String?) {
        let environment = ProcessInfo.processInfo.environment
        return (
            broker ?? environment["ADAPTERD_BROKER"] ?? "mqtt://127.0.0.1:1883", username ?? environment["ADAPTERCTL_USERNAME"],
            try Self.password(file: passwordFile ?? environment["ADAPTERCTL_PASSWORD_FILE"]), tlsCA ?? environment["ADAPTERCTL_TLS_CA"])
    }

    /// The first line of the password file at `path` (nil without one).
    static func password(file path: String?) throws -> String? {
        guard let path else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read the password file \(path)") }
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first
            .map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
    }
}

/// Where the worker is and how to talk to it; shared by every RPC subcommand.
struct BrokerOptions: ParsableArguments {
    @OptionGroup var login: BrokerLogin

    @Option(help: "Worker id (default: $ADAPTERD_WORKER_ID or the host name).")
    var worker: String?

    @Option(help: "Seconds to wait for the reply.")
    var timeout: Double = 10

    @Flag(help: "Send protobuf binary instead of JSON.")
    var protobuf = false

    @Option(name: .customLong("mqtt-version"), help: "5 (response topic + correlation data) or 3.1.1 (reply address in the body).")
    var mqttVersion: String = "5"

    @Flag(help: "Print the reply as JSON.")
    var json = false

    @Option(help: "Replies to wait for: with --worker pool every worker of the pool answers a control command.")
    var replies = 1

    func connect() async throws -> AdapterdClient {
        let environment = ProcessInfo.processInfo.environment
        let id = worker ?? environment["ADAPTERD_WORKER_ID"] ?? ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "edge"
        guard mqttVersion == "5" || mqttVersion == "3.1.1" else { throw ValidationError("--mqtt-version must be 5 or 3.1.1") }
        let broker = try login.resolved()
        return try await AdapterdClient(
            brokerURL: broker.url, worker: id, encoding: protobuf ? .protobuf : .json,
            protocolVersion: mqttVersion == "5" ? .v5 : .v311, username: broker.username,
            password: broker.password, tlsCAFile: broker.tlsCAFile, timeout: .seconds(timeout))
    }

    var replyTimeout: Duration { .milliseconds(Int64(timeout * 1000)) }

    /// Calls one control method and prints its reply (`human` renders an OK reply); with `--replies N`, prints
    /// each worker's reply and fails unless N workers answered OK.
    func call<Request, Reply>(_ method: AdapterdMethod<Request, Reply>, _ request: Request, human: (Reply) -> String) async throws {
        guard replies > 1 else {
            try ReplyPrinter.finish(try await control(method, request), json: json, human: human)
            return
        }
        let client = try await connect()
        defer { client.close() }
        let answers = try await client.callAll(client.topics.control(method.name), request, as: Reply.self, expecting: replies, timeout: replyTimeout)
        var failed = false
        for (worker, reply) in answers.sorted(by: { $0.worker < $1.worker }) {
            if json {
                print((try? reply.jsonString()) ?? "{}")
            } else if RPCStatus(reply.status) == .ok {
                print("== \(worker)\n" + human(reply))
            }
            if RPCStatus(reply.status) != .ok {
                failed = true
                FileHandle.standardError.write(Data("adapterctl: \(worker): \(RPCStatus(reply.status).name): \(reply.error)\n".utf8))
            }
        }
        if answers.count < replies {
            FileHandle.standardError.write(Data("adapterctl: \(answers.count) of \(replies) workers replied within \(timeout) s\n".utf8))
            failed = true
        }
        if failed { throw ExitCode(1) }
    }

    /// Connects, calls one control method, disconnects.
    func control<Request, Reply>(_ method: AdapterdMethod<Request, Reply>, _ request: Request) async throws -> Reply {
        let client = try await connect()
        defer { client.close() }
        return try await client.control(method, request, timeout: replyTimeout)
    }
}

/// Prints a reply and turns a non-OK status into exit code 1.
enum ReplyPrinter {
    static func finish<Reply: RPCReplyMessage>(_ reply: Reply, json: Bool, human: (Reply) -> String) throws {
        if json {
            let text = (try? reply.jsonString()) ?? "{}"
            print(text)
        } else if RPCStatus(reply.status) == .ok {
            print(human(reply))
        }
        guard RPCStatus(reply.status) == .ok else {
            FileHandle.standardError.write(Data("adapterctl: \(RPCStatus(reply.status).name): \(reply.error)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// Runs an RPC, reporting transport errors on stderr with exit code 2.
    static func rpc(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let exit as ExitCode {
            throw exit
        } catch let error as CustomStringConvertible & Error {
            FileHandle.standardError.write(Data("adapterctl: \(error.description)\n".utf8))
            throw ExitCode(2)
        }
    }
}
