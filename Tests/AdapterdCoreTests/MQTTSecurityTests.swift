import Foundation
import MQTTRPC
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP listener that records the first bytes a client sends (a plain socket, no MQTT).
final class ByteRecorder: @unchecked Sendable {
    let port: Int
    private let socket: Int32
    private let lock = NSLock()
    private var bytes: [UInt8] = []

    init() throws {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.socket = socket
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) } }
        guard bound == 0, listen(socket, 4) == 0 else {
            port = 0
            throw CocoaError(.fileWriteUnknown)
        }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in
            let client = accept(socket, nil, nil)
            guard client >= 0 else { return }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = read(client, &buffer, buffer.count)
            if count > 0 { lock.withLock { bytes = Array(buffer[0..<count]) } }
            close(client)
        }
        thread.start()
    }

    var received: [UInt8] { lock.withLock { bytes } }

    deinit { close(socket) }
}

@Suite("MQTT transport security")
struct MQTTSecurityTests {
    @Test("mqtts:// without a CA file still means TLS: a plain listener sees a TLS handshake, never the password")
    func mqttsIsAlwaysTLS() async throws {
        let recorder = try ByteRecorder()
        var options = try MQTTOptions.parse(url: "mqtts://127.0.0.1:\(recorder.port)", clientID: "tls-check")
        #expect(options.tls != nil)
        options.username = "sensor"
        options.password = "s3cret-pass"
        let client = try MQTTClient(options: options)
        defer { client.disconnect() }
        await #expect(throws: (any Error).self) { try await client.connect(timeout: .seconds(3)) }
        let deadline = ContinuousClock.now + .seconds(10)
        while recorder.received.isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let bytes = recorder.received
        #expect(bytes.first == 0x16, "expected a TLS handshake record, got \(bytes.prefix(8))")
        #expect(!String(decoding: bytes, as: UTF8.self).contains("s3cret-pass"), "the password went out in the clear")
    }

    @Test("mqtt:// stays plain and mqtts:// defaults to port 8883")
    func schemes() throws {
        #expect(try MQTTOptions.parse(url: "mqtt://127.0.0.1:1883", clientID: "a").tls == nil)
        #expect(try MQTTOptions.parse(url: "mqtts://broker.local", clientID: "a").port == 8883)
    }
}
