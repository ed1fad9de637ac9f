import AdapterEngine
import AdapterFormats
import Foundation
import InputRouting

/// The one way into the store for a new version, whether a LoadAdapter, a push's commit or a finished training
/// stages it: import the files (content-addressed), parse and validate them against the base model, run a smoke
/// inference, register the version in SQLite (or record it as failed). It holds no state and runs off the
/// registry's actor, at idle priority, waiting for gaps in serving between its steps.
struct AdapterLoader: Sendable {
    /// A version that passed validation and is registered, ready to become usable.
    struct Staged: Sendable {
        let record: AdapterVersionRecord
        let path: String
        let adapter: LoRAAdapter?
        let router: InputRouter?
    }

    let store: AdapterStore
    let engine: InferenceEngine
    /// SHA-256 of the base `model.safetensors` every registered version was validated against.
    let baseFingerprint: String
    /// Hub ids (`owner/name`) of the base model that adapters may declare in `base_model_name_or_path`.
    let baseModelNames: [String]
    /// Blocks a background thread until serving leaves a gap (or long enough has passed): each step of a load and
    /// each layer of its smoke inference waits on it.
    let waitForServingGap: @Sendable () -> Void

    /// Refuses (and records) a version whose sender declared another base model fingerprint (empty: not declared).
    func checkDeclaredBase(_ declaredBase: String, name: String, version: String, actor: String) throws(RegistryError) {
        guard !declaredBase.isEmpty, declaredBase != baseFingerprint else { return }
        let reason = "it was built for the base model with sha256 \(declaredBase.prefix(16))…, this worker serves \(baseFingerprint.prefix(16))…"
        _ = try? store.record(HistoryRecord(name: name, version: version, action: .refused, actor: actor, reason: reason))
        throw RegistryError.refused(name: name, version: version, reason: reason)
    }

    /// Copies the directory at `path` into the store; its content address.
    func importFiles(name: String, version: String, path: String) async throws(RegistryError) -> String {
        var isDirectory: ObjCBool = false
        guard !path.isEmpty, FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw RegistryError.noDirectory(name: name, version: version, path: path)
        }
        let store = store
        let wait = waitForServingGap
        let imported = await BackgroundThread.run { () -> Result<String, StoreError> in
            wait()
            do throws(StoreError) { return .success(try store.importFiles(from: path)) } catch { return .failure(error) }
        }
        do {
            return try imported.get()
        } catch {
            throw .store(error)
        }
    }

    /// Validates the imported files (content address `sha256`) as a `kind` and registers them as (name, version);
    /// a refusal is recorded as a failed version, and its files go unless another version shares them.
    func stage(name: String, version: String, sha256: String, kind: ArtifactKind, actor: String, source: String) async throws(RegistryError) -> Staged {
        let path = store.directory(forSHA256: sha256)
        let record: AdapterVersionRecord
        var adapter: LoRAAdapter?
        var router: InputRouter?
        do {
            switch kind {
            case .adapter:
                let loaded = try await validateAdapter(name: name, version: version, path: path)
                adapter = loaded
                record = AdapterVersionRecord(
                    name: name, version: version, sha256: sha256, sizeBytes: loaded.byteSize, rank: loaded.maxRank,
                    targets: Self.targets(of: loaded), baseFingerprint: baseFingerprint, labels: loaded.labels ?? [], source: source)
            case .router:
                let loaded = try validateRouter(name: name, version: version, path: path)
                router = loaded
                let bytes = ArtifactKind.router.files.reduce(0) { total, file in
                    total + ((try? FileManager.default.attributesOfItem(atPath: path + "/" + file)[.size] as? Int) ?? 0)
                }
                record = AdapterVersionRecord(
                    name: name, version: version, sha256: sha256, sizeBytes: bytes, rank: 0,
                    targets: loaded.stages.map { "layers \($0.features.layers)" }, baseFingerprint: baseFingerprint,
                    labels: loaded.labels, source: source, kind: .router)
            }
        } catch {
            let failed = AdapterVersionRecord(
                name: name, version: version, sha256: sha256, sizeBytes: 0, rank: 0, targets: [], baseFingerprint: baseFingerprint,
                labels: [], source: source, state: .failed, kind: kind)
            _ = try? store.register(failed, actor: actor)
            // A refused version leaves no files behind unless another registered version shares them.
            try? store.removeFilesIfUnused(sha256: sha256)
            var reason = "\(error)"
            if case let .refused(_, _, why) = error as? RegistryError { reason = why }
            throw RegistryError.refused(name: name, version: version, reason: reason)
        }
        // The durable write happens here, off the actor and at idle priority: requests resolving adapters never wait
        // for SQLite's commit, and its CPU work never takes a core from them.
        let store = store
        let wait = waitForServingGap
        let written = await BackgroundThread.run { () -> Result<AdapterVersionRecord, StoreError> in
            wait()
            do throws(StoreError) { return .success(try store.register(record, actor: actor)) } catch { return .failure(error) }
        }
        let registered: AdapterVersionRecord
        do {
            registered = try written.get()
        } catch {
            throw .store(error)
        }
        if kind == .adapter { CrashPoint.reached(.loadRegistered) }
        return Staged(record: registered, path: path, adapter: adapter, router: router)
    }

    /// Parses the adapter, checks its declared base model, and runs the smoke inference.
    private func validateAdapter(name: String, version: String, path: String) async throws -> LoRAAdapter {
        let model = engine.model
        let wait = waitForServingGap
        let adapter = try await BackgroundThread.run { () -> Result<LoRAAdapter, AdapterError> in
            wait()
            do throws(AdapterError) { return .success(try LoRAAdapter(directory: path, model: model, name: name)) } catch { return .failure(error) }
        }.get()
        if let problem = Self.baseModelProblem(declared: adapter.config.baseModel, accepted: baseModelNames) {
            throw RegistryError.refused(name: name, version: version, reason: problem)
        }
        try await smokeTest(adapter)
        return adapter
    }

    /// Parses the router and checks it against the base model; its labels are the adapter names it routes to, so
    /// they become registry keys and topic parts.
    func validateRouter(name: String, version: String, path: String) throws -> InputRouter {
        let router = try InputRouter(directory: path)
        try router.validate(for: engine.model, fingerprint: baseFingerprint)
        for label in router.labels {
            if let problem = AdapterName.problem(with: label) {
                throw RegistryError.refused(name: name, version: version, reason: "label '\(label)' is not an adapter name: \(problem)")
            }
            if label == name {
                throw RegistryError.refused(name: name, version: version, reason: "label '\(label)' is the router's own name; a router picks adapters")
            }
        }
        return router
    }

    /// One short row through the adapter, with the kernels requests run: it must produce finite numbers before it
    /// may serve. It runs on one idle-priority thread without the OpenMP team, so that it takes only CPU time
    /// serving leaves unused: queued on the engine thread, it delayed the request arriving just after it by a whole
    /// pass (Benchmarks/README.md, "Serving while adapters load").
    private func smokeTest(_ adapter: LoRAAdapter) async throws(RegistryError) {
        let input = EncodedInput(ids: engine.encode("adapterd smoke test").ids, adapter: adapter)
        let engine = engine
        let wait = waitForServingGap
        // The pass keeps the yield timer (the engine pauses it around its oneDNN calls), and between its layers it
        // waits for a gap between requests. Run without the timer, a slow layer held a CPU a request waited for.
        let output = await BackgroundThread.run {
            try? engine.runOnCallingThread(encoded: [input], pause: { wait(); BackgroundThread.yieldNow() }).first
        }
        guard let output else {
            throw RegistryError.refused(name: adapter.name, version: "", reason: "the smoke inference could not run")
        }
        // A token classifier answers per token: every token's logits count.
        var values = output.logits ?? output.embedding ?? []
        if case .tokenClassification(let logits, _) = output { values = logits.flatMap { $0 } }
        guard !values.isEmpty, values.allSatisfy(\.isFinite) else {
            throw RegistryError.refused(name: adapter.name, version: "", reason: "smoke inference produced non-finite outputs")
        }
    }

    /// Why an adapter declaring `declared` as its base model cannot run on this worker, or nil. Only hub ids
    /// (`owner/name`, not a local path) are compared, by their name part, case-insensitively: a local path says
    /// nothing reliable about which weights it held, and shapes and the fingerprint are checked separately.
    static func baseModelProblem(declared: String?, accepted: [String]) -> String? {
        guard let declared, !accepted.isEmpty else { return nil }
        let parts = declared.split(separator: "/", omittingEmptySubsequences: false)
        let hubLike = parts.count == 2 && parts.allSatisfy { part in
            !part.isEmpty && part != "." && part != ".." && part.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) }
        }
        guard hubLike, !FileManager.default.fileExists(atPath: declared) else { return nil }
        let name = parts[1].lowercased()
        guard !accepted.contains(where: { $0.split(separator: "/").last.map { $0.lowercased() == name } ?? false }) else { return nil }
        return "it was trained on base model '\(declared)', this worker serves '\(accepted[0])' (add the name to baseModelNames if they are the same weights)"
    }

    static func targets(of adapter: LoRAAdapter) -> [String] {
        Array(Set(adapter.modules.map { module -> String in
            switch module.module {
            case .embedding(let table): return table.path
            case .linear(_, let slot): return slot.path
            case .pooler: return "pooler.dense"
            case .classifier: return "classifier"
            }
        })).sorted()
    }

}
