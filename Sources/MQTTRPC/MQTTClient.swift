import CMosquitto
import Foundation

/// One connection to an MQTT broker through libmosquitto.
///
/// This type owns the `struct mosquitto *` and the network thread that drives it. libmosquitto calls back into it
/// on that thread; each callback copies what it needs (topic, payload, properties) before returning and hands
/// messages to Swift concurrency through `messages`, so that thread never waits on anything else. It is a class
/// with a lock because of those callbacks.
///
/// The thread is this type's own rather than `mosquitto_loop_start`'s: libmosquitto's loop gives up for good on
/// what it deems fatal (a refused login over MQTT 5, a failed TLS handshake, a protocol error), which left a worker
/// disconnected for ever. Here every lost or refused connection is retried with exponential back-off until
/// `disconnect`.
public final class MQTTClient: @unchecked Sendable {
    /// The options the client was created with.
    public let options: MQTTOptions
    /// Every message received on this connection's subscriptions, in arrival order.
    public let messages: AsyncStream<MQTTMessage>
    /// One element each time the broker accepts the connection, the first time and after every reconnect (only the
    /// latest is kept): what must be re-announced on a new connection (a retained status the Last Will replaced)
    /// follows it.
    public let connections: AsyncStream<Void>

    private let handle: OpaquePointer
    private let continuation: AsyncStream<MQTTMessage>.Continuation
    private let connectionsContinuation: AsyncStream<Void>.Continuation
    private let lock = NSLock()
    private var subscriptions: [String: Int] = [:]
    private var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
    private var nextWaiter = 0
    /// SUBACK waiters by message id, and acknowledgements that arrived before their waiter registered.
    private var subscribeWaiters: [Int32: CheckedContinuation<Void, any Error>] = [:]
    private var acknowledged: Set<Int32> = []
    /// QoS 1/2 publishes the broker has not acknowledged yet, by message id, and acknowledgements that arrived
    /// before `publish` recorded their id (the network thread can be that fast).
    private var unacknowledged: Set<Int32> = []
    private var acknowledgedEarly: Set<Int32> = []
    private var connected = false
    private var loopRunning = false
    private var disconnecting = false
    /// Seconds before the network thread's next reconnect; back to the minimum on every accepted connection.
    private var reconnectDelay: Int
    /// Signalled when `disconnect` asks the network thread to stop, and when that thread has ended.
    private let loopCondition = NSCondition()
    private var loopEnded = true

    private static let initialise: Void = { mosquitto_lib_init() }()

    /// Creates an unconnected client.
    public init(options: MQTTOptions) throws(MQTTError) {
        Self.initialise
        self.options = options
        (messages, continuation) = AsyncStream.makeStream(of: MQTTMessage.self, bufferingPolicy: .unbounded)
        (connections, connectionsContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        reconnectDelay = max(1, options.reconnectDelay.minimum)
        guard let handle = mosquitto_new(options.clientID, options.cleanStart, nil) else {
            throw .library(operation: "mosquitto_new", code: MOSQ_ERR_NOMEM.rawValue, message: "cannot create a client")
        }
        self.handle = handle
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        try options.configure(handle)
        mosquitto_connect_v5_callback_set(handle) { _, context, code, _, _ in
            MQTTClient.from(context).didConnect(code: code)
        }
        mosquitto_disconnect_v5_callback_set(handle) { _, context, code, _ in
            MQTTClient.from(context).didDisconnect(code: code)
        }
        mosquitto_log_callback_set(handle) { _, context, level, message in
            guard level & Int32(MOSQ_LOG_ERR) != 0, let message else { return }
            MQTTClient.from(context).didLogError(String(cString: message))
        }
        mosquitto_subscribe_v5_callback_set(handle) { _, context, mid, _, _, _ in
            MQTTClient.from(context).didSubscribe(mid: mid)
        }
        mosquitto_publish_v5_callback_set(handle) { _, context, mid, _, _ in
            MQTTClient.from(context).didPublish(mid: mid)
        }
        mosquitto_message_v5_callback_set(handle) { _, context, message, properties in
            guard let message else { return }
            MQTTClient.from(context).didReceive(message.pointee, properties: properties)
        }
    }

    deinit {
        stopLoop()
        mosquitto_destroy(handle)
        continuation.finish()
        connectionsContinuation.finish()
    }

    private static func from(_ context: UnsafeMutableRawPointer?) -> MQTTClient {
        Unmanaged<MQTTClient>.fromOpaque(context!).takeUnretainedValue()
    }

    /// Whether the broker has accepted the connection and it is up.
    public var isConnected: Bool { lock.withLock { connected } }

    /// Connects and waits for the broker's CONNACK. Throws at once when the broker cannot be reached; once it
    /// could be, the network thread keeps (re)connecting by itself with exponential back-off, through refused
    /// logins and lost connections alike, and restores the subscriptions; calling `connect` again then only waits.
    public func connect(timeout: Duration = .seconds(10)) async throws {
        let running = lock.withLock { () -> Bool in
            disconnecting = false
            return loopRunning
        }
        if !running {
            var properties: OpaquePointer?
            defer { mosquitto_property_free_all(&properties) }
            if options.protocolVersion == .v5 && options.sessionExpiry > 0 {
                try MQTTError.check(mosquitto_property_add_int32(&properties, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), options.sessionExpiry), "set session expiry")
            }
            try MQTTError.check(mosquitto_connect_bind_v5(handle, options.host, Int32(options.port), Int32(options.keepAlive), nil, properties), "connect to \(options.host):\(options.port)")
            startLoop()
        }
        try await waitUntilConnected(timeout: timeout)
    }

    /// Starts the network thread unless it runs.
    private func startLoop() {
        let start = lock.withLock { () -> Bool in
            defer { loopRunning = true }
            return !loopRunning
        }
        guard start else { return }
        loopCondition.withLock { loopEnded = false }
        // Unretained: `deinit` stops and waits for this thread before the client goes away. A plain pthread, as
        // libmosquitto's own `mosquitto_loop_start` creates.
        var thread = pthread_t()
        let context = Unmanaged.passUnretained(self).toOpaque()
        pthread_create(&thread, nil, { context in
            MQTTClient.from(context).runLoop()
            return nil
        }, context)
        pthread_detach(thread)
    }

    /// The network thread: reads and writes the socket, sends keep-alives, and after any failure (a lost
    /// connection, a refused CONNACK, a TLS or protocol error) waits the back-off and reconnects, until `disconnect`.
    private func runLoop() {
        defer {
            loopCondition.withLock {
                loopEnded = true
                loopCondition.broadcast()
            }
        }
        // A stop still sends the DISCONNECT queued by `disconnect` (so no Last Will), bounded for a dead peer.
        var stopDeadline: ContinuousClock.Instant?
        while true {
            if lock.withLock({ disconnecting }) {
                let deadline = stopDeadline ?? .now + .seconds(2)
                stopDeadline = deadline
                guard mosquitto_socket(handle) >= 0, ContinuousClock.now < deadline,
                      mosquitto_loop(handle, 100, 1) == MOSQ_ERR_SUCCESS.rawValue else { return }
                continue
            }
            // A short select timeout: `disconnect` is noticed within it even when nothing wakes the select.
            if mosquitto_loop(handle, 200, 1) == MOSQ_ERR_SUCCESS.rawValue { continue }
            let delay = lock.withLock { () -> Int in
                connected = false
                defer { reconnectDelay = min(reconnectDelay * 2, max(options.reconnectDelay.maximum, options.reconnectDelay.minimum, 1)) }
                return reconnectDelay
            }
            let stopping = loopCondition.withLock { () -> Bool in
                let until = Date().addingTimeInterval(TimeInterval(delay))
                while !lock.withLock({ disconnecting }) {
                    if !loopCondition.wait(until: until) { break }
                }
                return lock.withLock { disconnecting }
            }
            if stopping { return }
            // A failure here shows as the next loop's error, which waits and retries again.
            _ = mosquitto_reconnect(handle)
        }
    }

    /// Asks the network thread to stop and waits (bounded) until it has.
    private func stopLoop() {
        let running = lock.withLock { () -> Bool in
            disconnecting = true
            defer { loopRunning = false }
            return loopRunning
        }
        mosquitto_disconnect(handle)
        guard running else { return }
        loopCondition.withLock {
            loopCondition.broadcast()
            let until = Date().addingTimeInterval(5)
            while !loopEnded, loopCondition.wait(until: until) {}
        }
    }

    /// Waits until the connection is up (after a reconnect, say), or throws after `timeout`.
    public func waitUntilConnected(timeout: Duration) async throws {
        if isConnected { return }
        let id = lock.withLock { () -> Int in
            nextWaiter += 1
            return nextWaiter
        }
        try await awaitSignal(
            timeout: timeout, timeoutError: .timedOut(operation: "connecting to \(options.host):\(options.port)"),
            register: { continuation in
                if self.connected { return true }
                self.waiters[id] = continuation
                return false
            },
            remove: { self.waiters.removeValue(forKey: id) })
    }

    /// Waits for a continuation that `register` files under the lock (or `true` when the signal already came) to be
    /// resumed by a callback; after `timeout`, `remove` takes it back and it throws `timeoutError`.
    private func awaitSignal(
        timeout: Duration, timeoutError: MQTTError,
        register: @escaping @Sendable (CheckedContinuation<Void, any Error>) -> Bool,
        remove: @escaping @Sendable () -> CheckedContinuation<Void, any Error>?
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { continuation in
                    if self.lock.withLock({ register(continuation) }) { continuation.resume() }
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                self.lock.withLock { remove() }?.resume(throwing: timeoutError)
                // The group reports whichever child ends first: the sleeper must fail itself, or a timeout would
                // read as success.
                throw timeoutError
            }
            // Whichever way the group ends (the signal, the timeout, or the task's cancellation: SIGTERM while
            // connecting), the waiter must be resumed, or the group would wait for it for ever.
            defer { self.lock.withLock { remove() }?.resume(throwing: CancellationError()) }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Subscribes now (if connected) and again after every reconnect.
    public func subscribe(_ filter: String, qos: Int = 1) throws(MQTTError) {
        let isUp = lock.withLock { () -> Bool in
            subscriptions[filter] = qos
            return connected
        }
        if isUp { try MQTTError.check(mosquitto_subscribe_v5(handle, nil, filter, Int32(qos), 0, nil), "subscribe to \(filter)") }
    }

    /// Subscribes (and again after every reconnect) and returns once the broker has acknowledged it, so messages
    /// published afterwards are delivered; throws after `timeout`. Needs a connection.
    public func subscribe(_ filter: String, qos: Int = 1, acknowledgedWithin timeout: Duration) async throws {
        lock.withLock { subscriptions[filter] = qos }
        var messageID: Int32 = 0
        try MQTTError.check(mosquitto_subscribe_v5(handle, &messageID, filter, Int32(qos), 0, nil), "subscribe to \(filter)")
        let mid = messageID
        try await awaitSignal(
            timeout: timeout, timeoutError: .timedOut(operation: "waiting for the broker to acknowledge the subscription to \(filter)"),
            register: { continuation in
                if self.acknowledged.remove(mid) != nil { return true }
                self.subscribeWaiters[mid] = continuation
                return false
            },
            remove: { self.subscribeWaiters.removeValue(forKey: mid) })
    }

    /// Publishes a message; safe from any task or thread. MQTT 5 properties are dropped on a 3.1.1 connection.
    public func publish(_ topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false, properties: MQTTProperties = MQTTProperties()) throws(MQTTError) {
        var list: OpaquePointer?
        defer { mosquitto_property_free_all(&list) }
        if options.protocolVersion == .v5 {
            try properties.append(to: &list)
        }
        var mid: Int32 = 0
        let code = payload.withUnsafeBytes { bytes in
            mosquitto_publish_v5(handle, &mid, topic, Int32(bytes.count), bytes.baseAddress, Int32(qos), retain, list)
        }
        if code == MOSQ_ERR_NO_CONN.rawValue { throw .notConnected }
        try MQTTError.check(code, "publish to \(topic)")
        if qos > 0 {
            lock.withLock {
                if acknowledgedEarly.remove(mid) == nil { unacknowledged.insert(mid) }
            }
        }
    }

    /// QoS 1/2 messages published on this connection that the broker has not acknowledged yet.
    public var unacknowledgedCount: Int { lock.withLock { unacknowledged.count } }

    /// Waits until the broker has acknowledged every QoS 1/2 message published so far, or `timeout` passes;
    /// returns whether it did. libmosquitto holds publishes beyond the broker's receive maximum in its own queue and
    /// drops them on `disconnect`: a graceful stop waits here first, so no reply is lost.
    @discardableResult
    public func waitUntilAcknowledged(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while unacknowledgedCount > 0 {
            guard ContinuousClock.now < deadline, isConnected else { return false }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return true
    }

    /// Disconnects cleanly (no Last Will) and stops the network thread.
    public func disconnect() {
        stopLoop()
        lock.withLock { connected = false }
    }

    /// Ends `messages` and `connections`: loops reading them finish once they have taken what was already received.
    public func finishMessages() {
        continuation.finish()
        connectionsContinuation.finish()
    }

    // MARK: Callbacks on libmosquitto's network thread

    private func didConnect(code: Int32) {
        guard code == 0 else {
            let reason = String(cString: mosquitto_connack_string(code))
            let pending = lock.withLock { () -> [CheckedContinuation<Void, any Error>] in
                defer { waiters.removeAll() }
                return Array(waiters.values)
            }
            pending.forEach { $0.resume(throwing: MQTTError.connectionRefused(reason: reason)) }
            return
        }
        let (filters, pending) = lock.withLock { () -> ([String: Int], [CheckedContinuation<Void, any Error>]) in
            connected = true
            reconnectDelay = max(1, options.reconnectDelay.minimum)
            defer { waiters.removeAll() }
            return (subscriptions, Array(waiters.values))
        }
        for (filter, qos) in filters { mosquitto_subscribe_v5(handle, nil, filter, Int32(qos), 0, nil) }
        pending.forEach { $0.resume() }
        connectionsContinuation.yield()
    }

    private func didSubscribe(mid: Int32) {
        let waiter = lock.withLock { () -> CheckedContinuation<Void, any Error>? in
            if let waiter = subscribeWaiters.removeValue(forKey: mid) { return waiter }
            // Acknowledgements of subscriptions nobody waits for (reconnects, `subscribe` without waiting) are
            // remembered only briefly: message ids wrap at 65,535.
            if acknowledged.count > 1024 { acknowledged.removeAll() }
            acknowledged.insert(mid)
            return nil
        }
        waiter?.resume()
    }

    private func didPublish(mid: Int32) {
        lock.withLock {
            guard unacknowledged.remove(mid) == nil else { return }
            // Completions of QoS 0 publishes land here too and are never claimed: keep the set small. Message ids
            // wrap at 65,535, far beyond the broker's receive maximum.
            if acknowledgedEarly.count > 4096 { acknowledgedEarly.removeAll() }
            acknowledgedEarly.insert(mid)
        }
    }

    private func didDisconnect(code: Int32) {
        lock.withLock { connected = false }
    }

    /// libmosquitto reports a failed TLS handshake on the network thread only as a log line (no CONNACK, no
    /// disconnect callback); the thread retries, and callers waiting to connect get OpenSSL's reason at once.
    private func didLogError(_ message: String) {
        guard message.contains("OpenSSL Error") || message.contains("TLS") else { return }
        let pending = lock.withLock { () -> [CheckedContinuation<Void, any Error>] in
            guard !connected else { return [] }
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
        let error = MQTTError.library(
            operation: "connecting to \(options.host):\(options.port)", code: Int32(MOSQ_ERR_TLS.rawValue),
            message: "the TLS handshake failed (\(message)): is the broker's certificate signed by the CA in use (--tls-ca, or the system's CAs) and issued for this host, and does the broker speak TLS on this port?")
        pending.forEach { $0.resume(throwing: error) }
    }

    private func didReceive(_ message: mosquitto_message, properties list: OpaquePointer?) {
        let topic = String(cString: message.topic)
        var payload = [UInt8](repeating: 0, count: Int(message.payloadlen))
        if message.payloadlen > 0, let source = message.payload {
            payload.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: source, count: Int(message.payloadlen))) }
        }
        continuation.yield(MQTTMessage(
            topic: topic, payload: payload, qos: Int(message.qos), retain: message.retain,
            properties: MQTTProperties(mosquitto: list), receivedAt: .now))
    }
}
