import Foundation

/// The dashboard page, shipped beside the executable as SwiftPM's resource bundle
/// (`adapterd_AdapterdHTTP.resources/Dashboard/index.html`). Looked up by path rather than through `Bundle.module`,
/// whose accessor stops the process when the bundle was not installed.
enum Dashboard {
    static let candidates: [String] = {
        let beside = Bundle.main.bundleURL.appendingPathComponent("adapterd_AdapterdHTTP.resources/Dashboard/index.html").path
        return [ProcessInfo.processInfo.environment["ADAPTERD_DASHBOARD"], beside, "/usr/local/share/adapterd/dashboard/index.html", "/usr/share/adapterd/dashboard/index.html"]
            .compactMap { $0 }
    }()

    static let page: [UInt8] = {
        for path in candidates {
            if let data = FileManager.default.contents(atPath: path) { return Array(data) }
        }
        return Array("<!doctype html><p>adapterd: the dashboard page is not installed (looked in \(candidates.joined(separator: ", "))).</p>".utf8)
    }()
}
