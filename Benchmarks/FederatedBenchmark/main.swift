import AdapterEngine
import AdapterTraining
import FederatedLearning
import Foundation

// The federated study (issue 28), in process: the routing set's fit examples split non-IID over workers
// (Dirichlet(α) over domains, seed fixed), then side by side on eval.jsonl
//   - central: the same training on all fit examples in one place (r 8, alpha 16, query/value, lr 1e-3, 10 epochs);
//   - local only: each worker's adapter trained on its slice alone (same settings), mean accuracy;
//   - federated: `--rounds` rounds of LocalTraining + FederatedAggregator, per method,
// with bytes up and down per worker per round. The worker's round runs exactly this LocalTraining.
// Usage: FederatedBenchmark MODEL_DIR ROUTING_DIR [--rounds 10] [--workers 6] [--dirichlet 0.5] [--split-seed 0]
//        [--seeds 0,1,2] [--local-epochs 5] [--lr 5e-3] [--methods svd,ffa,fedit] [--dp-clip C --dp-noise σ]
//        [--write-split DIR]   (only writes each worker's slice as DIR/worker-N.jsonl, for run-federated)

struct Arguments {
    var model = ""
    var routing = ""
    var rounds = 10
    var workers = 6
    var dirichlet = 0.5
    var splitSeed: UInt64 = 0
    var seeds: [UInt64] = [0]
    var localEpochs = 5
    var learningRate: Float = 5e-3
    var methods: [AggregationMethod] = [.productSVD, .frozenA, .factorAverage]
    var privacy: DifferentialPrivacy?
    /// Only write each worker's slice as `DIR/worker-N.jsonl` (for run-federated) and stop.
    var writeSplit: String?

    init() {
        var positional: [String] = []
        var clip: Double?, noise: Double?
        var iterator = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--rounds": rounds = Int(iterator.next()!)!
            case "--workers": workers = Int(iterator.next()!)!
            case "--dirichlet": dirichlet = Double(iterator.next()!)!
            case "--split-seed": splitSeed = UInt64(iterator.next()!)!
            case "--seeds": seeds = iterator.next()!.split(separator: ",").map { UInt64($0)! }
            case "--local-epochs": localEpochs = Int(iterator.next()!)!
            case "--lr": learningRate = Float(iterator.next()!)!
            case "--methods": methods = iterator.next()!.split(separator: ",").map { AggregationMethod(rawValue: String($0))! }
            case "--dp-clip": clip = Double(iterator.next()!)!
            case "--dp-noise": noise = Double(iterator.next()!)!
            case "--write-split": writeSplit = iterator.next()!
            default: positional.append(argument)
            }
        }
        model = positional[0]
        routing = positional[1]
        if let clip, let noise { privacy = DifferentialPrivacy(clip: clip, noiseMultiplier: noise) }
    }
}

func examples(_ path: String) throws -> [TrainingExample] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { line in
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: String]
        return TrainingExample(text: object["text"]!, label: object["adapter"]!)
    }
}

let arguments = Arguments()
let model = try BertModel(directory: arguments.model)
let fit = try examples(arguments.routing + "/fit.jsonl")
let eval = try examples(arguments.routing + "/eval.jsonl")
let labels = Trainer.labels(of: fit)
let slices = DirichletPartition(alpha: arguments.dirichlet, seed: arguments.splitSeed).split(fit, clients: arguments.workers)
print("split of \(fit.count) fit examples over \(arguments.workers) workers (Dirichlet \(arguments.dirichlet), seed \(arguments.splitSeed)):")
for (index, slice) in slices.enumerated() {
    let counts = labels.map { label in slice.filter { $0.label == label }.count }
    print("  worker \(index + 1): \(slice.count) examples, by domain \(counts)")
}

if let directory = arguments.writeSplit {
    for (index, slice) in slices.enumerated() {
        let lines = try slice.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }.joined(separator: "\n")
        try (lines + "\n").write(toFile: "\(directory)/worker-\(index + 1).jsonl", atomically: true, encoding: .utf8)
    }
    exit(0)
}

func centralOptions(seed: UInt64) -> Trainer.Options {
    var options = Trainer.Options()
    options.seed = seed
    return options
}

func evaluate(_ tensors: TensorSet, plan: RoundPlan) throws -> Double {
    let adapter = try LocalTraining(model: model, plan: plan).startingAdapter(global: tensors)
    return try Trainer(model: model, options: centralOptions(seed: 0)).accuracy(of: adapter, on: eval)
}

var rows: [String] = []
for seed in arguments.seeds {
    let clock = ContinuousClock()
    let centralStart = clock.now
    let central = try Trainer(model: model, options: centralOptions(seed: seed)).train(fit, eval: eval, labels: labels).report.evalAccuracy!
    print(String(format: "seed %llu central (all %d fit examples, 10 epochs, lr 1e-3): %.3f (%@)", seed, fit.count, central, "\(clock.now - centralStart)"))
    // The same training at the federated run's learning rate: the stricter bar when it is higher.
    var sameRate = centralOptions(seed: seed)
    sameRate.optimizer.learningRate = arguments.learningRate
    let centralSameRate = try Trainer(model: model, options: sameRate).train(fit, eval: eval, labels: labels).report.evalAccuracy!
    print(String(format: "seed %llu central at the federated lr %g: %.3f", seed, arguments.learningRate, centralSameRate))
    let bar = max(central, centralSameRate)
    var locals: [Double] = []
    for slice in slices where !slice.isEmpty {
        locals.append(try Trainer(model: model, options: centralOptions(seed: seed)).train(slice, eval: eval, labels: labels).report.evalAccuracy!)
    }
    let localDefault = locals.reduce(0, +) / Double(locals.count)
    print(String(format: "seed %llu local only: mean %.3f over %d workers %@", seed, localDefault, locals.count, locals.map { String(format: "%.3f", $0) }.joined(separator: " ")))
    // Each worker alone with the federated run's learning rate and as many epochs as it trains over the whole run:
    // the stronger local bar.
    var strongOptions = centralOptions(seed: seed)
    strongOptions.optimizer.learningRate = arguments.learningRate
    strongOptions.epochs = arguments.rounds * arguments.localEpochs
    var strong: [Double] = []
    for slice in slices where !slice.isEmpty {
        strong.append(try Trainer(model: model, options: strongOptions).train(slice, eval: eval, labels: labels).report.evalAccuracy!)
    }
    let localStrong = strong.reduce(0, +) / Double(strong.count)
    print(String(format: "seed %llu local only at lr %g, %d epochs: mean %.3f %@", seed, arguments.learningRate, strongOptions.epochs, localStrong, strong.map { String(format: "%.3f", $0) }.joined(separator: " ")))
    let localMean = max(localDefault, localStrong)
    for method in arguments.methods {
        var plan = RoundPlan(labels: labels)
        plan.seed = seed
        plan.localEpochs = arguments.localEpochs
        plan.learningRate = arguments.learningRate
        plan.method = method
        let aggregator = FederatedAggregator(method: method, privacy: arguments.privacy)
        var global: TensorSet?
        var random = SeededRandom(seed: seed &+ 99)
        var accuracies: [Double] = []
        var bytesUp = 0, bytesDown = 0
        let started = clock.now
        for round in 1...arguments.rounds {
            var updates: [ClientUpdate] = []
            bytesDown = global?.safetensors().count ?? 0
            for (index, slice) in slices.enumerated() where !slice.isEmpty {
                let outcome = try LocalTraining(model: model, plan: plan).run(round: round, global: global, examples: slice)
                bytesUp = outcome.tensors.safetensors().count
                updates.append(ClientUpdate(worker: "w\(index)", tensors: outcome.tensors, examples: outcome.examples, localAccuracy: outcome.accuracy))
            }
            let reference = global ?? updates[0].tensors
            for update in updates where global != nil { try aggregator.check(update, against: reference) }
            global = try aggregator.aggregate(global: reference, updates: updates, random: &random)
            accuracies.append(try evaluate(global!, plan: plan))
        }
        let final = accuracies.last!
        print(String(format: "seed %llu federated %@: per round %@ (%@)", seed, method.rawValue, accuracies.map { String(format: "%.3f", $0) }.joined(separator: " "), "\(clock.now - started)"))
        var row = String(format: "| %llu | %@ | %.3f / %.3f | %.3f / %.3f | %.3f | %+.1f | %+.1f | %d | %d |", seed, method.rawValue, central, centralSameRate, localDefault, localStrong, final, 100 * (final - bar), 100 * (final - localMean), bytesDown, bytesUp)
        if let privacy = arguments.privacy { row += String(format: " ε %.2f (δ %g) |", privacy.epsilon(rounds: arguments.rounds), privacy.delta) }
        rows.append(row)
    }
}
print("\n| seed | method | central (lr 1e-3 / federated lr) | local only, mean (lr 1e-3 / federated lr and epochs) | federated | vs the better central (points) | vs the better local (points) | bytes down / worker / round | bytes up / worker / round |")
print("|---|---|---|---|---|---|---|---|---|")
rows.forEach { print($0) }
