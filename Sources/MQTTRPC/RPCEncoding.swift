import SwiftProtobuf

/// How an RPC body is encoded on the wire.
public enum RPCEncoding: Sendable, Equatable {
    /// Protobuf binary, `application/x-protobuf`.
    case protobuf
    /// Protobuf's canonical JSON mapping, `application/json`.
    case json

    /// The MQTT 5 content type for this encoding.
    public var contentType: String {
        switch self {
        case .protobuf: return "application/x-protobuf"
        case .json: return "application/json"
        }
    }

    /// The encoding a request uses: its content type when it has one, else JSON when the body starts with `{`
    /// (after whitespace), else protobuf binary. Nil for a content type this service does not speak.
    public static func detect(contentType: String?, payload: [UInt8]) -> RPCEncoding? {
        if let contentType, !contentType.isEmpty {
            let base = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            switch base {
            case "application/json", "text/json": return .json
            case "application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf": return .protobuf
            default: return nil
            }
        }
        let first = payload.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
        return first == UInt8(ascii: "{") ? .json : .protobuf
    }
}

/// Encodes and decodes RPC bodies.
public enum RPCCodec {
    /// Field names follow protobuf's JSON mapping; unknown fields are ignored so sensors may add their own.
    static let jsonDecoding: JSONDecodingOptions = {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        return options
    }()

    /// Decodes a request body; any problem is an `INVALID_ARGUMENT` naming it.
    public static func decode<M: SwiftProtobuf.Message>(_ type: M.Type, from payload: [UInt8], encoding: RPCEncoding) throws(RPCError) -> M {
        do {
            switch encoding {
            case .json:
                return try M(jsonUTF8Bytes: payload, options: jsonDecoding)
            case .protobuf:
                return try M(serializedBytes: payload)
            }
        } catch let error as JSONDecodingError {
            throw RPCError(.invalidArgument, "malformed JSON \(M.protoMessageName): \(describe(error))")
        } catch {
            throw RPCError(.invalidArgument, "malformed \(encoding == .json ? "JSON" : "protobuf") \(M.protoMessageName): \(error)")
        }
    }

    /// Encodes a reply body.
    public static func encode<M: SwiftProtobuf.Message>(_ message: M, encoding: RPCEncoding) -> [UInt8] {
        do {
            switch encoding {
            case .json: return try message.jsonUTF8Bytes()
            case .protobuf: return try message.serializedBytes()
            }
        } catch {
            // Only messages with unset required fields or invalid Any payloads fail to encode; ours have neither.
            preconditionFailure("cannot encode \(M.protoMessageName): \(error)")
        }
    }

    static func describe(_ error: JSONDecodingError) -> String {
        switch error {
        case .malformedNumber: return "a number field holds something else"
        case .malformedString: return "a string field holds something else"
        case .malformedBool: return "a boolean field holds something else"
        case .malformedMap: return "a map field is not an object of strings"
        case .unrecognizedEnumValue: return "unknown enum value"
        case .truncated: return "the JSON ends early"
        case .leadingZero, .numberRange: return "a number is out of range"
        case .unquotedMapKey: return "a map key is not quoted"
        case .illegalNull: return "null where a value is required"
        case .failure: return "not a JSON object"
        default: return "\(error)"
        }
    }
}
