import Foundation

/// What a stored, versioned artifact is: a PEFT LoRA adapter, or an input router that picks adapters. Both are
/// directories of a few files, hashed, stored, pushed, activated and rolled back the same way.
public enum ArtifactKind: String, Sendable, CaseIterable, Codable {
    case adapter
    case router

    /// The files that make up an artifact of this kind, in digest and bundle order.
    public var files: [String] {
        switch self {
        case .adapter: return ["adapter_config.json", "adapter_model.safetensors", "labels.json"]
        case .router: return ["router.json", "router.safetensors"]
        }
    }

    /// The files it cannot do without.
    public var requiredFiles: [String] {
        switch self {
        case .adapter: return ["adapter_config.json", "adapter_model.safetensors"]
        case .router: return files
        }
    }

    /// The kind of the artifact in `directory`: a router when it holds `router.json`, else an adapter.
    public static func of(directory: String) -> ArtifactKind {
        FileManager.default.fileExists(atPath: directory + "/router.json") ? .router : .adapter
    }

    /// The kind whose first file is `name`, if any (how a bundle announces its kind).
    static func starting(with name: String) -> ArtifactKind? {
        allCases.first { $0.files.contains(name) }
    }
}
