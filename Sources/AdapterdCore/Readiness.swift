import Foundation

/// Whether the worker is serving; read by the HTTP listener's thread.
final class Readiness: @unchecked Sendable {
    private let lock = NSLock()
    private var ready = false

    var value: Bool { lock.withLock { ready } }

    func set(_ value: Bool) { lock.withLock { ready = value } }
}
