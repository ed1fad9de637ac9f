import AdapterdAPI
import AdapterEngine
import AdapterFormats
import AdapterRuntime
import AdapterTraining
import Foundation

/// Training methods: train a new version on the worker, cancel it, and store labelled feedback for later trainings.
public struct TrainingHandlers: Sendable {
    let services: WorkerServices

    /// Handlers over `services`.
    public init(services: WorkerServices) {
        self.services = services
    }

    /// The methods, for the server's table.
    public var methods: [RPCMethod] {
        [.unary(.trainAdapter, train), .unary(.cancelTraining, cancel), .unary(.feedback, feedback)]
    }

    /// Validates a training, checks it fits the memory budget and starts it; the reply says what it will use.
    public func train(_ request: Adapterd_V1_TrainAdapterRequest, _ context: RPCContext) async throws -> Adapterd_V1_TrainAdapterReply {
        guard services.configuration.trainingEnabled else { throw HandlerError.trainingDisabled }
        for (field, value) in [("name", request.name), ("version", request.version)] {
            if let problem = AdapterName.problem(with: value) { throw HandlerError.invalidField(field: field, value: value, problem: problem) }
        }
        var examples = request.examples.map { TrainingExample(text: $0.text, label: $0.label) }
        var fromFeedback = 0
        if request.useFeedback {
            let stored = try services.registry.feedback(name: request.name)
            fromFeedback = stored.count
            examples += stored.map { TrainingExample(text: $0.text, label: $0.label) }
        }
        let eval = request.eval.map { TrainingExample(text: $0.text, label: $0.label) }
        if let empty = (examples + eval).first(where: { $0.label.isEmpty || $0.text.isEmpty }) {
            throw HandlerError.invalidField(field: "examples", value: empty.text, problem: "every example needs a text and a label")
        }
        let labels = Trainer.labels(of: examples + eval)
        guard labels.count >= 2 else {
            throw TrainingError.invalidOptions("the examples name \(labels.count) label(s); a classifier needs at least 2 (\(examples.count) examples, \(fromFeedback) from feedback)")
        }
        var options = Trainer.Options()
        if request.rank != 0 { options.rank = Int(request.rank) }
        if request.alpha != 0 { options.alpha = request.alpha }
        if request.epochs != 0 { options.epochs = Int(request.epochs) }
        if request.batchSize != 0 { options.batchSize = Int(request.batchSize) }
        if request.learningRate != 0 { options.optimizer.learningRate = request.learningRate }
        options.seed = request.seed
        if !request.targets.isEmpty {
            options.targets = try request.targets.map { name throws(HandlerError) -> LinearSlot in
                guard let slot = LinearSlot(moduleName: name) else {
                    throw HandlerError.invalidField(field: "targets", value: name, problem: "not one of query, key, value, attention.output.dense, intermediate.dense, output.dense")
                }
                return slot
            }
        }
        try options.validate()
        let budget = services.configuration.trainingMemoryBudgetBytes
        options.memoryBudgetBytes = budget
        let trainer = Trainer(model: services.engine.model, options: options)
        let estimated = trainer.estimatedPeakBytes(for: examples, labels: labels.count)
        if estimated > budget { throw TrainingError.tooLarge(neededBytes: estimated, budgetBytes: budget) }
        try await services.registry.checkRoom(name: request.name, version: request.version)
        try await services.registry.checkKind(.adapter, name: request.name)
        try await services.training.start(TrainingJobs.Job(
            name: request.name, version: request.version, examples: examples, eval: eval, labels: labels, options: options,
            timeLimit: .seconds(services.configuration.trainingMaxSeconds), activate: request.activate, actor: context.actor,
            fromFeedback: fromFeedback))
        var reply = Adapterd_V1_TrainAdapterReply()
        reply.examples = Int32(examples.count)
        reply.labels = labels
        reply.totalSteps = Int32(clamping: (examples.count + options.batchSize - 1) / options.batchSize * options.epochs)
        reply.estimatedBytes = Int64(estimated)
        return reply
    }

    /// Stops a running training; nothing of it is staged.
    public func cancel(_ request: Adapterd_V1_CancelTrainingRequest, _ context: RPCContext) async throws -> Adapterd_V1_CancelTrainingReply {
        try await services.training.cancel(name: request.name, version: request.version)
        return Adapterd_V1_CancelTrainingReply()
    }

    /// Stores a labelled text for a name.
    public func feedback(_ request: Adapterd_V1_FeedbackRequest, _ context: RPCContext) async throws -> Adapterd_V1_FeedbackReply {
        if let problem = AdapterName.problem(with: request.name) { throw HandlerError.invalidField(field: "name", value: request.name, problem: problem) }
        guard !request.text.isEmpty else { throw HandlerError.missingField("text") }
        guard !request.label.isEmpty else { throw HandlerError.missingField("label") }
        var reply = Adapterd_V1_FeedbackReply()
        reply.stored = Int32(clamping: try services.registry.addFeedback(
            name: request.name, text: request.text, label: request.label, limits: services.configuration.feedbackLimits))
        return reply
    }
}
