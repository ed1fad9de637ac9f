import Foundation

/// Where `LoadAdapter` may read from: a client names a path on the worker, so only directories the operator
/// configured are readable, and a path outside them is refused before the file system is asked anything (the
/// reply cannot reveal whether it exists).
enum AdapterRoots {
    /// Whether `path` lies inside one of `roots`: first by its text (`..` resolved, no file-system access), then,
    /// when it does, by its real location (so a symbolic link inside a root cannot lead out of it).
    static func contains(_ path: String, roots: [String]) -> Bool {
        guard !path.isEmpty else { return false }
        let lexical = standardized(path)
        let lexicalRoots = roots.map(standardized)
        guard lexicalRoots.contains(where: { inside(lexical, $0) }) else { return false }
        guard let real = realPath(path) else { return true }  // does not exist: the load reports it, inside a root
        return roots.compactMap(realPath).contains { inside(real, $0) }
    }

    private static func standardized(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }

    private static func inside(_ path: String, _ root: String) -> Bool {
        path == root || path.hasPrefix(root.hasSuffix("/") ? root : root + "/")
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
