import AdapterEngine
import Crypto
import Foundation
import MQTTRPC

/// The adapters this worker holds in memory, by name and version, and which version of each name is active.
public actor AdapterRegistry {
    /// One loaded adapter version.
    public struct Entry: Sendable {
        public let name: String
        public let version: String
        public let path: String
        public let adapter: LoRAAdapter
        /// SHA-256 over the adapter's files (see `digest(of:)`).
        public let sha256: String
        public let loadedAt: Date
    }

    private let model: BertModel
    private var entries: [String: [String: Entry]] = [:]
    private var active: [String: String] = [:]

    public init(model: BertModel) {
        self.model = model
    }

    /// Loads a PEFT adapter directory as (name, version). The first version of a name becomes active. Loading the
    /// same files again is a no-op; other files under a loaded (name, version) are `ALREADY_EXISTS`.
    @discardableResult
    public func load(name: String, version: String, path: String) throws(RPCError) -> Entry {
        try AdapterName.validate(name, field: "name")
        try AdapterName.validate(version, field: "version")
        var isDirectory: ObjCBool = false
        guard !path.isEmpty, FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw RPCError(.notFound, "adapter '\(name)' \(version): no directory at '\(path)'")
        }
        let digest = try Self.digest(of: path)
        if let existing = entries[name]?[version] {
            guard existing.sha256 == digest else {
                throw RPCError(.alreadyExists, "adapter '\(name)' \(version) is already loaded with other contents (sha256 \(existing.sha256.prefix(12))…); load it under a new version")
            }
            return existing
        }
        let adapter: LoRAAdapter
        do {
            adapter = try LoRAAdapter(directory: path, model: model, name: name)
        } catch {
            throw RPCError(.failedPrecondition, "adapter '\(name)' \(version) refused: \(error.description)")
        }
        let entry = Entry(name: name, version: version, path: path, adapter: adapter, sha256: digest, loadedAt: Date())
        entries[name, default: [:]][version] = entry
        if active[name] == nil { active[name] = version }
        return entry
    }

    /// Unloads one version, or every version of `name` when `version` is empty. Requests already running keep
    /// the adapter they started with. When the active version goes, the newest remaining one becomes active.
    public func unload(name: String, version: String) throws(RPCError) {
        guard var versions = entries[name] else { throw RPCError(.notFound, "no adapter '\(name)' is loaded") }
        if version.isEmpty {
            entries[name] = nil
            active[name] = nil
            return
        }
        guard versions.removeValue(forKey: version) != nil else { throw RPCError(.notFound, "adapter '\(name)' has no version '\(version)' loaded") }
        entries[name] = versions.isEmpty ? nil : versions
        if active[name] == version {
            active[name] = versions.values.max { $0.loadedAt < $1.loadedAt }?.version
        }
    }

    /// The entry for (name, version), or the active version when `version` is empty.
    public func resolve(name: String, version: String) throws(RPCError) -> Entry {
        guard let versions = entries[name] else { throw RPCError(.notFound, "no adapter '\(name)' is loaded") }
        let wanted = version.isEmpty ? (active[name] ?? "") : version
        guard let entry = versions[wanted] else { throw RPCError(.notFound, "adapter '\(name)' has no version '\(version)' loaded") }
        return entry
    }

    /// Every loaded version with whether it is the active one, sorted by name and version.
    public func list() -> [(entry: Entry, isActive: Bool)] {
        entries.values.flatMap(\.values)
            .sorted { ($0.name, $0.version) < ($1.name, $1.version) }
            .map { ($0, active[$0.name] == $0.version) }
    }

    /// Number of loaded versions.
    public var count: Int { entries.values.reduce(0) { $0 + $1.count } }

    /// SHA-256 over the adapter's files that decide its behaviour (`adapter_config.json`,
    /// `adapter_model.safetensors`, `labels.json` when present), each as name, NUL, 8-byte length, bytes.
    public static func digest(of directory: String) throws(RPCError) -> String {
        var hasher = SHA256()
        for file in ["adapter_config.json", "adapter_model.safetensors", "labels.json"] {
            let path = directory + "/" + file
            guard FileManager.default.fileExists(atPath: path) else {
                if file == "labels.json" { continue }
                throw RPCError(.failedPrecondition, "'\(directory)' is not a PEFT adapter: \(file) is missing")
            }
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
            } catch {
                throw RPCError(.failedPrecondition, "cannot read \(path): \(error.localizedDescription)")
            }
            hasher.update(data: Data(file.utf8) + [0])
            withUnsafeBytes(of: UInt64(data.count).littleEndian) { hasher.update(bufferPointer: $0) }
            hasher.update(data: data)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
