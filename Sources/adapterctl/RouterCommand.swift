import AdapterEngine
import AdapterFormats
import ArgumentParser
import Foundation
import InputRouting

/// `adapterctl router …`: input routers, made and checked locally.
struct RouterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router", abstract: "Fit input routers that pick an adapter from a request's text.",
        subcommands: [Fit.self, Eval.self])

    struct Fit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fit a router on labelled texts (JSON Lines of {\"text\", \"adapter\"}) and write its directory.")

        @Option(help: "Base model directory (the worker's).") var model: String
        @Option(help: "Fit examples, one {\"text\": …, \"adapter\": …} per line.") var examples: String
        @Option(help: "Directory to write router.json and router.safetensors into.") var out: String
        @Option(help: "Held-out examples to score the router on (accuracy and a confusion table).") var eval: String?
        @Option(help: "Design: cascade (default: word pieces, escalating to the sentence embedding when unsure), embedding or wordpiece.")
        var kind: String = RouterKind.cascade.rawValue
        @Option(help: "Fixed confidence below which the cascade escalates (default: chosen by cross-validation).") var threshold: Float?
        @Option(name: .customLong("max-escalation"), help: "Most of the fit examples the cheap stage may pass on, 0…1 (about the average cost as a share of a full pass).")
        var maxEscalation: Double = 0.2
        @Option(help: "L2 penalty of every stage's classifier (mean cross-entropy + penalty/2·‖W‖²; default 0.01).") var penalty: Double?

        func validate() throws {
            guard RouterKind(rawValue: kind) != nil else {
                throw ValidationError("--kind must be one of \(RouterKind.allCases.map(\.rawValue).joined(separator: ", ")), not '\(kind)'")
            }
            if let threshold, !(0...1).contains(threshold) { throw ValidationError("--threshold must be within 0…1") }
        }

        func run() async throws {
            do {
                let engine = try InferenceEngine(modelDirectory: model)
                let fingerprint = try AdapterDigest.sha256(ofFile: model + "/model.safetensors")
                let training = try RoutingExample.read(jsonl: examples)
                var options = RouterFitter.Options()
                options.kind = RouterKind(rawValue: kind)!
                options.threshold = threshold
                options.maxEscalation = maxEscalation
                if let penalty { options.lambdas = [penalty] }
                let started = ContinuousClock.now
                let (router, report) = try RouterFitter(engine: engine, fingerprint: fingerprint).fit(training, options: options)
                try router.write(to: out, kind: kind)
                print("fitted a \(kind) router on \(training.count) examples, \(router.labels.count) adapters (\(router.labels.joined(separator: ", "))) in \(String(format: "%.1f", (ContinuousClock.now - started).inSeconds)) s")
                for (index, stage) in report.stages.enumerated() {
                    let answers = index == report.stages.count - 1 ? "answers the rest" : String(format: "answers at confidence ≥ %.3f", stage.threshold)
                    print(String(format: "  stage %d: %d layers, ≤ %d tokens, L2 penalty %g, cross-validated accuracy %.3f; %@", index, stage.features.layers, stage.features.maxTokens, stage.lambda, stage.accuracy, answers))
                }
                print(String(format: "  cascade: cross-validated accuracy %.3f, %.1f%% escalated", report.accuracy, report.escalationRate * 100))
                print("wrote \(out)/router.json and \(out)/router.safetensors")
                if let eval {
                    let held = try RoutingExample.read(jsonl: eval)
                    let evaluation = try await RouterEvaluation(router: router, examples: held, engine: engine)
                    print("eval: " + evaluation.summary)
                    print(evaluation.table)
                }
            } catch let error as CustomStringConvertible & Error {
                FileHandle.standardError.write(Data("adapterctl: \(error.description)\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}

extension RouterCommand {
    struct Eval: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Score a router on labelled texts: accuracy, escalations and a confusion table.")

        @Option(help: "Base model directory.") var model: String
        @Option(help: "Router directory.") var router: String
        @Option(help: "Examples, one {\"text\": …, \"adapter\": …} per line.") var examples: String

        func run() async throws {
            do {
                let engine = try InferenceEngine(modelDirectory: model)
                let loaded = try InputRouter(directory: router)
                try loaded.validate(for: engine.model, fingerprint: try AdapterDigest.sha256(ofFile: model + "/model.safetensors"))
                let evaluation = try await RouterEvaluation(router: loaded, examples: try RoutingExample.read(jsonl: examples), engine: engine)
                print(evaluation.summary)
                print(evaluation.table)
            } catch let error as CustomStringConvertible & Error {
                FileHandle.standardError.write(Data("adapterctl: \(error.description)\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}

/// `adapterctl route`: which adapter a router picks for each text, locally.
struct RouteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "route", abstract: "Route texts with an input router, locally.")

    @Option(help: "Base model directory.") var model: String
    @Option(help: "Router directory (router.json, router.safetensors).") var router: String
    @Flag(help: "Print one JSON object per text.") var json = false
    @Argument(help: "Texts to route.") var texts: [String]

    func validate() throws {
        guard !texts.isEmpty else { throw ValidationError("give at least one TEXT") }
    }

    func run() async throws {
        do {
            let engine = try InferenceEngine(modelDirectory: model)
            let loaded = try InputRouter(directory: router)
            try loaded.validate(for: engine.model, fingerprint: try AdapterDigest.sha256(ofFile: model + "/model.safetensors"))
            let decisions = try await loaded.route(texts, engine: engine)
            for (text, decision) in zip(texts, decisions) {
                if json {
                    print("{\"text\":\(RunCommand.jsonString(text)),\"adapter\":\(RunCommand.jsonString(decision.adapter)),\"confidence\":\(decision.confidence),\"stage\":\(decision.stage)}")
                } else {
                    print("\(decision.adapter)\t\(String(format: "%.3f", decision.confidence))\tstage \(decision.stage)\t\(text)")
                }
            }
        } catch let error as CustomStringConvertible & Error {
            FileHandle.standardError.write(Data("adapterctl: \(error.description)\n".utf8))
            throw ExitCode(2)
        }
    }
}
