import Foundation

/// Small file helpers for building test fixtures.
enum FileManagerCopy {
    static func copy(_ source: String, to destination: String) throws {
        try FileManager.default.copyItem(atPath: source, toPath: destination)
    }

    /// Copies a reference adapter into a fresh directory so a test can alter it.
    static func copyAdapter(_ name: String) throws -> String {
        let directory = Fixtures.temporaryDirectory() + "/" + name
        try FileManager.default.copyItem(atPath: Fixtures.adapterDirectory(name), toPath: directory)
        for file in try FileManager.default.contentsOfDirectory(atPath: directory) {
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: directory + "/" + file)
        }
        return directory
    }

    static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }
}
