extension InferenceEngine {
    /// How one adapter's rows run in this batch.
    private enum Route {
        /// In the engine's precision, unchecked.
        case unchecked
        /// In INT8, re-run in FP32 where a row lies closer to a decision than `threshold`.
        case checked(threshold: Float, problem: ClassifierHead.ProblemType)
        /// Straight to the FP32 pass.
        case fp32
    }

    /// One forward pass over `inputs`; in INT8, rows near a decision again in FP32 (`LabelCheck`). `sequential`
    /// passes (one thread, background work) are not timed for the check's cost estimate.
    func pass(_ inputs: [EncodedInput], pause: @escaping () -> Void = {}, sequential: Bool = false) -> [CheckedOutput] {
        guard let labelCheck else {
            return forward(plan, inputs, pause: pause).map { CheckedOutput(output: $0, outcome: .unchecked) }
        }
        var routes: [ObjectIdentifier: Route] = [:]
        for input in inputs {
            guard let adapter = input.adapter, routes[ObjectIdentifier(adapter)] == nil else { continue }
            let rows = inputs.count(where: { $0.adapter === adapter })
            routes[ObjectIdentifier(adapter)] = decideRoute(adapter, rows: rows, check: labelCheck, pause: pause)
        }
        func route(of input: EncodedInput) -> Route { input.adapter.flatMap { routes[ObjectIdentifier($0)] } ?? .unchecked }

        var outputs = [CheckedOutput?](repeating: nil, count: inputs.count)
        var fp32Rows = inputs.indices.filter { if case .fp32 = route(of: inputs[$0]) { true } else { false } }
        let int8Rows = inputs.indices.filter { if case .fp32 = route(of: inputs[$0]) { false } else { true } }
        var counts: [ObjectIdentifier: (adapter: LoRAAdapter, checked: Int, unsure: Int)] = [:]
        if !int8Rows.isEmpty {
            let quantised = timed(.int8, int8Rows.map { inputs[$0] }, check: labelCheck, sequential: sequential) {
                forward(plan, $0, pause: pause)
            }
            for (index, output) in zip(int8Rows, quantised) {
                guard case let .checked(threshold, problem) = route(of: inputs[index]), let adapter = inputs[index].adapter,
                      let rows = output.logitRows else {
                    outputs[index] = CheckedOutput(output: output, outcome: .unchecked)
                    continue
                }
                // A token classifier's row is unsure when any of its tokens is.
                let unsure = rows.contains { (LabelCheck.distance(of: $0, problem: problem) ?? .infinity) < threshold }
                counts[ObjectIdentifier(adapter), default: (adapter, 0, 0)].checked += 1
                if unsure {
                    counts[ObjectIdentifier(adapter), default: (adapter, 0, 0)].unsure += 1
                    fp32Rows.append(index)
                } else {
                    outputs[index] = CheckedOutput(output: output, outcome: .kept)
                }
            }
        }
        for (adapter, checked, unsure) in counts.values { adapter.labelCheck.record(labelCheck.id, checked: checked, unsure: unsure) }
        if !fp32Rows.isEmpty {
            fp32Rows.sort()
            let exact = timed(.fp32, fp32Rows.map { inputs[$0] }, check: labelCheck, sequential: sequential) {
                forward(labelCheck.exact, $0, pause: pause)
            }
            for (index, output) in zip(fp32Rows, exact) {
                if case .fp32 = route(of: inputs[index]) {
                    outputs[index] = CheckedOutput(output: output, outcome: .routedToFP32)
                } else {
                    outputs[index] = CheckedOutput(output: output, outcome: .rechecked)
                }
            }
            rechecks.add(fp32Rows.count)
        }
        return outputs.map { $0! }
    }

    /// The largest INT8 logit error of `adapter` on the calibration texts (what `LabelCheck` scales its margin by),
    /// measured now if it has not been. Nil for an FP32 engine, an engine without the check, or an adapter without
    /// labels to keep. Costs an INT8 and an FP32 pass over 12 short texts once per adapter: the worker runs it when it
    /// loads one, off the serving path.
    @discardableResult
    public func calibrateLabelCheck(_ adapter: LoRAAdapter, pause: @escaping () -> Void = {}) -> Float? {
        // A token classifier is measured (and checked) token by token, a sequence classifier row by row.
        guard let labelCheck, let head = adapter.head, head.problemType != .regression else { return nil }
        let problem = head.problemType
        if let error = adapter.labelCheck.state(labelCheck.id)?.calibratedError { return error }
        let (error, unsure) = calibrationError(adapter, check: labelCheck, problem: problem, pause: pause)
        adapter.labelCheck.calibrated(labelCheck.id, error: error, rows: labelCheck.calibration.count, unsure: unsure)
        return error
    }

    /// The largest INT8 logit error of `adapter`'s rows over the calibration texts, as one batch (so on its merged
    /// layers once it has them), and how many rows the check would re-run.
    func calibrationError(
        _ adapter: LoRAAdapter, check labelCheck: LabelCheck, problem: ClassifierHead.ProblemType, pause: @escaping () -> Void
    ) -> (error: Float, unsure: Int) {
        let rows = labelCheck.calibration.map { EncodedInput(ids: $0, adapter: adapter) }
        let quantised = forward(plan, rows, pause: pause)
        let exact = forward(labelCheck.exact, rows, pause: pause)
        var error: Float = 0
        for (int8, fp32) in zip(quantised, exact) {
            guard let int8 = int8.logitRows, let fp32 = fp32.logitRows else { continue }
            for (one, other) in zip(int8, fp32) { error = max(error, LabelCheck.error(int8: one, fp32: other, problem: problem)) }
        }
        let threshold = labelCheck.factor * error
        let unsure = quantised.count { output in
            output.logitRows?.contains { (LabelCheck.distance(of: $0, problem: problem) ?? .infinity) < threshold } ?? false
        }
        return (error, unsure)
    }

    /// What this engine's label check has measured of `adapter`, once it ran or calibrated it.
    public func labelCheckFigures(for adapter: LoRAAdapter) -> LabelCheckFigures? {
        guard let labelCheck, let state = adapter.labelCheck.state(labelCheck.id) else { return nil }
        return LabelCheckFigures(
            calibratedError: state.calibratedError, unsureRate: state.checked > 0 ? state.unsure / state.checked : nil,
            rechecked: state.rechecked, routedToFP32: state.routed)
    }

    private func decideRoute(_ adapter: LoRAAdapter, rows: Int, check: LabelCheck, pause: @escaping () -> Void) -> Route {
        guard let problem = adapter.head?.problemType, let error = calibrateLabelCheck(adapter, pause: pause) else { return .unchecked }
        if adapter.labelCheck.routesToFP32(check.id, rows: rows, breakEven: check.breakEven, probeEvery: LabelCheck.probeEvery) { return .fp32 }
        return .checked(threshold: check.factor * error, problem: problem)
    }

    private func timed(
        _ precision: Precision, _ inputs: [EncodedInput], check: LabelCheck, sequential: Bool, _ body: ([EncodedInput]) -> [InferenceOutput]
    ) -> [InferenceOutput] {
        guard !sequential else { return body(inputs) }
        let start = ContinuousClock.now
        let outputs = body(inputs)
        check.record(precision, tokens: inputs.reduce(0) { $0 + $1.ids.count }, duration: .now - start)
        return outputs
    }
}
