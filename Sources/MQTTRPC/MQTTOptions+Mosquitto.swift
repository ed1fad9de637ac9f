import CMosquitto

extension MQTTOptions {
    /// Applies these options to a new libmosquitto client: protocol version, TCP_NODELAY, receive maximum,
    /// credentials, TLS and the Last Will.
    func configure(_ client: OpaquePointer) throws(MQTTError) {
        // Publishes and subscriptions come from other threads than the network thread: libmosquitto then locks and
        // wakes that thread's select.
        try MQTTError.check(mosquitto_threaded_set(client, true), "enable threading")
        try MQTTError.check(mosquitto_int_option(client, MOSQ_OPT_PROTOCOL_VERSION, protocolVersion == .v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311), "set protocol version")
        // Request/reply traffic is small messages in both directions: without TCP_NODELAY, Nagle's algorithm and
        // delayed ACKs add tens of milliseconds to every round trip.
        try MQTTError.check(mosquitto_int_option(client, MOSQ_OPT_TCP_NODELAY, 1), "set TCP_NODELAY")
        if let receiveMaximum, protocolVersion == .v5 {
            try MQTTError.check(mosquitto_int_option(client, MOSQ_OPT_RECEIVE_MAXIMUM, Int32(receiveMaximum)), "set receive maximum")
        }
        if let username {
            try MQTTError.check(mosquitto_username_pw_set(client, username, password), "set credentials")
        }
        if let tls {
            if let caFile = tls.caFile {
                try MQTTError.check(mosquitto_tls_set(client, caFile, nil, tls.certFile, tls.keyFile, nil), "configure TLS")
            } else {
                // No CA given: the system's store, so `mqtts://` is never silently plaintext.
                try MQTTError.check(mosquitto_int_option(client, MOSQ_OPT_TLS_USE_OS_CERTS, 1), "trust the system's CA certificates")
                try MQTTError.check(mosquitto_tls_set(client, nil, "/etc/ssl/certs", tls.certFile, tls.keyFile, nil), "configure TLS")
            }
        }
        if let will {
            let code = will.payload.withUnsafeBytes { bytes in
                mosquitto_will_set_v5(client, will.topic, Int32(bytes.count), bytes.baseAddress, Int32(will.qos), will.retain, nil)
            }
            try MQTTError.check(code, "set last will")
        }
    }
}
