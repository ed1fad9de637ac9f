import CMosquitto
import Foundation

extension MQTTProperties {
    /// The properties this project uses, copied from libmosquitto's list; every string libmosquitto allocates is
    /// freed here.
    init(mosquitto list: OpaquePointer?) {
        self.init()
        guard let list else { return }
        var text: UnsafeMutablePointer<CChar>?
        if mosquitto_property_read_string(list, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), &text, false) != nil, let text {
            responseTopic = String(cString: text)
            free(text)
        }
        text = nil
        if mosquitto_property_read_string(list, Int32(MQTT_PROP_CONTENT_TYPE.rawValue), &text, false) != nil, let text {
            contentType = String(cString: text)
            free(text)
        }
        var binary: UnsafeMutableRawPointer?
        var length: UInt16 = 0
        if mosquitto_property_read_binary(list, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), &binary, &length, false) != nil, let binary {
            correlationData = Array(UnsafeRawBufferPointer(start: binary, count: Int(length)))
            free(binary)
        }
        var expiry: UInt32 = 0
        if mosquitto_property_read_int32(list, Int32(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL.rawValue), &expiry, false) != nil {
            messageExpiry = expiry
        }
        var cursor: OpaquePointer? = list
        var skipFirst = false
        while true {
            var name: UnsafeMutablePointer<CChar>?
            var value: UnsafeMutablePointer<CChar>?
            guard let found = mosquitto_property_read_string_pair(cursor, Int32(MQTT_PROP_USER_PROPERTY.rawValue), &name, &value, skipFirst) else { break }
            if let name, let value { userProperties.append(MQTTUserProperty(String(cString: name), String(cString: value))) }
            free(name)
            free(value)
            cursor = found
            skipFirst = true
        }
    }

    /// Appends these properties to a libmosquitto property list (the caller frees it).
    func append(to list: inout OpaquePointer?) throws(MQTTError) {
        if let topic = responseTopic {
            try MQTTError.check(mosquitto_property_add_string(&list, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), topic), "add response topic")
        }
        if let data = correlationData {
            let code = data.withUnsafeBytes { mosquitto_property_add_binary(&list, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), $0.baseAddress, UInt16(min($0.count, 65535))) }
            try MQTTError.check(code, "add correlation data")
        }
        if let type = contentType {
            try MQTTError.check(mosquitto_property_add_string(&list, Int32(MQTT_PROP_CONTENT_TYPE.rawValue), type), "add content type")
        }
        if let expiry = messageExpiry {
            try MQTTError.check(mosquitto_property_add_int32(&list, Int32(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL.rawValue), expiry), "add message expiry")
        }
        for property in userProperties {
            try MQTTError.check(mosquitto_property_add_string_pair(&list, Int32(MQTT_PROP_USER_PROPERTY.rawValue), property.name, property.value), "add user property")
        }
    }
}

extension MQTTError {
    /// Throws libmosquitto's error for `code` (with errno's text for `MOSQ_ERR_ERRNO`) unless it is success.
    static func check(_ code: Int32, _ operation: String) throws(MQTTError) {
        guard code == MOSQ_ERR_SUCCESS.rawValue else {
            let message = code == MOSQ_ERR_ERRNO.rawValue ? String(cString: strerror(errno)) : String(cString: mosquitto_strerror(code))
            throw .library(operation: operation, code: code, message: message)
        }
    }
}
