import Foundation
import MQTTRPC
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP listener that records the first bytes a client sends (a plain socket, no MQTT).
final class ByteRecorder: Sendable {
    let port: Int
    private let socket: Int32
    /// Ends with the first bytes the client sent, once it has sent any.
    private let arrivals: AsyncStream<[UInt8]>

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
        let (arrivals, arrived) = AsyncStream.makeStream(of: [UInt8].self)
        self.arrivals = arrivals
        let thread = Thread {
            let client = accept(socket, nil, nil)
            guard client >= 0 else { return }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = read(client, &buffer, buffer.count)
            if count > 0 { arrived.yield(Array(buffer[0..<count])) }
            arrived.finish()
            close(client)
        }
        thread.start()
    }

    /// The first bytes a client sent, or nothing if none arrived within `timeout`.
    func firstBytes(within timeout: Duration) async -> [UInt8] {
        await withTaskGroup(of: [UInt8]?.self) { group in
            group.addTask { for await bytes in self.arrivals { return bytes }; return [] }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? []
        }
    }

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
        let bytes = await recorder.firstBytes(within: .seconds(10))
        #expect(bytes.first == 0x16, "expected a TLS handshake record, got \(bytes.prefix(8))")
        #expect(!String(decoding: bytes, as: UTF8.self).contains("s3cret-pass"), "the password went out in the clear")
    }

    @Test("mqtt:// stays plain and mqtts:// defaults to port 8883")
    func schemes() throws {
        #expect(try MQTTOptions.parse(url: "mqtt://127.0.0.1:1883", clientID: "a").tls == nil)
        #expect(try MQTTOptions.parse(url: "mqtts://broker.local", clientID: "a").port == 8883)
    }
}
