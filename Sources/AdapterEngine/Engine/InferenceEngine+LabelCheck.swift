extension InferenceEngine {
    /// How one adapter's rows run in this batch.
    private enum Route {
        /// In the engine's precision, unchecked.
        case unchecked
        /// From pass `start` of the check (`LabelCheck.passes`), on to the next where a row lies closer to a
        /// decision than `thresholds[pass]`.
        case checked(start: Int, thresholds: [Float], problem: ClassifierHead.ProblemType)
    }

    /// One forward pass over `inputs`; with a label check, rows near a decision again in more exact passes
    /// (`LabelCheck`). `sequential` passes (one thread, background work) are not timed for the check's cost estimate.
    func pass(_ inputs: [EncodedInput], pause: @escaping () -> Void = {}, sequential: Bool = false) -> [CheckedOutput] {
        guard let labelCheck else {
            return forward(plan, inputs, pause: pause).map { CheckedOutput(output: $0, outcome: .unchecked) }
        }
        var routes: [ObjectIdentifier: Route] = [:]
        let costs = labelCheck.passCosts
        for input in inputs {
            guard let adapter = input.adapter, routes[ObjectIdentifier(adapter)] == nil else { continue }
            routes[ObjectIdentifier(adapter)] = decideRoute(adapter, check: labelCheck, costs: costs, pause: pause)
        }
        func route(of input: EncodedInput) -> Route { input.adapter.flatMap { routes[ObjectIdentifier($0)] } ?? .unchecked }
        func start(of index: Int) -> Int { if case .checked(let start, _, _) = route(of: inputs[index]) { start } else { 0 } }

        var outputs = [CheckedOutput?](repeating: nil, count: inputs.count)
        var waiting = labelCheck.passes.indices.map { pass in inputs.indices.filter { start(of: $0) == pass } }
        var answered: [ObjectIdentifier: (adapter: LoRAAdapter, rechecked: Int, routed: Int)] = [:]
        // Per adapter and checked pass: rows counted, and those the pass left (or would have left) unsure.
        var counts: [ObjectIdentifier: (adapter: LoRAAdapter, checked: [Int], unsure: [Int])] = [:]
        for (index, plan) in labelCheck.passes.enumerated() where !waiting[index].isEmpty {
            let rows = waiting[index].sorted()
            let results = timed(pass: index, rows.map { inputs[$0] }, check: labelCheck, sequential: sequential) {
                forward(plan, $0, pause: pause)
            }
            for (row, output) in zip(rows, results) {
                guard case let .checked(start, thresholds, problem) = route(of: inputs[row]), let adapter = inputs[row].adapter,
                      let logits = output.logitRows else {
                    outputs[row] = CheckedOutput(output: output, outcome: .unchecked)
                    continue
                }
                // A token classifier's row is as close to a decision as its closest token.
                let distance = logits.map { LabelCheck.distance(of: $0, problem: problem) ?? .infinity }.min() ?? .infinity
                if index < thresholds.count, distance < thresholds[index] {
                    waiting[index + 1].append(row)
                    continue
                }
                // Answered here. Every checked pass counts the row: those it climbed through left it unsure, later
                // ones are surer still, and a pass below its start would have left it unsure where this answer lies
                // within that pass's threshold of a decision (the pass's own logits differ from these by about its
                // error, far below the threshold), so that each pass's rate follows the traffic without running it.
                let id = ObjectIdentifier(adapter)
                var entry = counts[id] ?? (adapter, labelCheck.checkedPasses.map { _ in 0 }, labelCheck.checkedPasses.map { _ in 0 })
                for pass in labelCheck.checkedPasses {
                    entry.checked[pass] += 1
                    if pass < start ? distance < thresholds[pass] : pass < index { entry.unsure[pass] += 1 }
                }
                counts[id] = entry
                if index == 0 {
                    outputs[row] = CheckedOutput(output: output, outcome: .kept)
                } else if index == start {
                    outputs[row] = CheckedOutput(output: output, outcome: .routed(plan.precision))
                    answered[id, default: (adapter, 0, 0)].routed += 1
                } else {
                    outputs[row] = CheckedOutput(output: output, outcome: .rechecked(plan.precision))
                    answered[id, default: (adapter, 0, 0)].rechecked += 1
                }
            }
        }
        for (adapter, checked, unsure) in counts.values {
            adapter.labelCheck.record(labelCheck.id, checked: checked, unsure: unsure)
        }
        for (adapter, rechecked, routed) in answered.values {
            adapter.labelCheck.answered(labelCheck.id, rechecked: rechecked, routed: routed)
            rechecks.add(rechecked + routed)
        }
        return outputs.map { $0! }
    }

    /// The largest logit error of `adapter` in the engine's own precision on the calibration texts (what
    /// `LabelCheck` scales its margin by), measured now, with the other checked passes', if it has not been. Nil for
    /// an FP32 engine, an engine without the check, or an adapter without labels to keep. Costs one pass of each kind
    /// over 12 short texts once per adapter: the worker runs it when it loads one, off the serving path.
    @discardableResult
    public func calibrateLabelCheck(_ adapter: LoRAAdapter, pause: @escaping () -> Void = {}) -> Float? {
        calibratedErrors(adapter, pause: pause)?.first
    }

    /// Every checked pass's calibrated error of `adapter`, measured now if it has not been.
    private func calibratedErrors(_ adapter: LoRAAdapter, pause: @escaping () -> Void) -> [Float]? {
        // A token classifier is measured (and checked) token by token, a sequence classifier row by row.
        guard let labelCheck, let head = adapter.head, head.problemType != .regression else { return nil }
        if let errors = adapter.labelCheck.state(labelCheck.id)?.calibratedErrors { return errors }
        let (errors, unsure) = calibrationErrors(adapter, check: labelCheck, problem: head.problemType, pause: pause)
        adapter.labelCheck.calibrated(labelCheck.id, errors: errors, rows: labelCheck.calibration.count, unsure: unsure)
        return adapter.labelCheck.state(labelCheck.id)?.calibratedErrors
    }

    /// The largest logit error of `adapter`'s rows over the calibration texts in each checked pass, each pass as one
    /// batch (so on its merged layers once it has them), and how many rows each would pass on.
    func calibrationErrors(
        _ adapter: LoRAAdapter, check labelCheck: LabelCheck, problem: ClassifierHead.ProblemType, pause: @escaping () -> Void
    ) -> (errors: [Float], unsure: [Int]) {
        let rows = labelCheck.calibration.map { EncodedInput(ids: $0, adapter: adapter) }
        let exact = forward(labelCheck.exact, rows, pause: pause)
        var errors: [Float] = []
        var unsure: [Int] = []
        for index in labelCheck.checkedPasses {
            let approximate = forward(labelCheck.passes[index], rows, pause: pause)
            var error: Float = 0
            for (one, reference) in zip(approximate, exact) {
                guard let one = one.logitRows, let reference = reference.logitRows else { continue }
                for (row, exactRow) in zip(one, reference) { error = max(error, LabelCheck.error(row, exact: exactRow, problem: problem)) }
            }
            let threshold = labelCheck.factor * error
            errors.append(error)
            unsure.append(approximate.count { output in
                output.logitRows?.contains { (LabelCheck.distance(of: $0, problem: problem) ?? .infinity) < threshold } ?? false
            })
        }
        return (errors, unsure)
    }

    /// What this engine's label check has measured of `adapter`, once it ran or calibrated it.
    public func labelCheckFigures(for adapter: LoRAAdapter) -> LabelCheckFigures? {
        guard let labelCheck, let state = adapter.labelCheck.state(labelCheck.id), let errors = state.calibratedErrors else { return nil }
        let passes = errors.enumerated().map { index, error in
            LabelCheckFigures.Pass(
                precision: labelCheck.passes[index].precision, calibratedError: error, unsureRate: state.unsureRate(index))
        }
        return LabelCheckFigures(passes: passes, rechecked: state.rechecked, routed: state.routed)
    }

    private func decideRoute(_ adapter: LoRAAdapter, check: LabelCheck, costs: [Double], pause: @escaping () -> Void) -> Route {
        guard let problem = adapter.head?.problemType, let errors = calibratedErrors(adapter, pause: pause) else { return .unchecked }
        let start = adapter.labelCheck.startingPass(check.id, costs: costs)
        return .checked(start: start, thresholds: errors.map { check.factor * $0 }, problem: problem)
    }

    private func timed(
        pass index: Int, _ inputs: [EncodedInput], check: LabelCheck, sequential: Bool, _ body: ([EncodedInput]) -> [InferenceOutput]
    ) -> [InferenceOutput] {
        guard !sequential else { return body(inputs) }
        let start = ContinuousClock.now
        let outputs = body(inputs)
        check.record(pass: index, tokens: inputs.reduce(0) { $0 + $1.ids.count }, duration: .now - start)
        return outputs
    }
}
