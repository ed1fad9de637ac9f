import Foundation
import Yams

/// Where settings come from: the command line, the environment and a configuration file (YAML, or JSON, which YAML
/// reads too). Each lookup applies flag > environment > file > default, the one place that precedence lives.
public struct SettingSources: Sendable {
    /// A value as read from the configuration file: scalars kept as text, parsed like flag values.
    indirect enum FileValue: Sendable {
        case scalar(String)
        case list([FileValue])
        case map([String: FileValue])
    }

    /// Values given on the command line, by setting key (a flag given several times has several).
    public var arguments: [String: [String]]
    /// The process environment.
    public var environment: [String: String]
    /// The configuration file's path, when one was read.
    public let filePath: String?
    private let file: [String: FileValue]

    /// Sources without a configuration file.
    public init(arguments: [String: [String]] = [:], environment: [String: String] = [:]) {
        self.arguments = arguments
        self.environment = environment
        filePath = nil
        file = [:]
    }

    /// Sources with the configuration file at `configFile` (nil: none). An unreadable file, invalid YAML or an
    /// unknown key is an error naming the file, so a typo does not silently fall back to a default.
    public init(arguments: [String: [String]], environment: [String: String], configFile: String?) throws(SettingError) {
        self.arguments = arguments
        self.environment = environment
        filePath = configFile
        guard let configFile else {
            file = [:]
            return
        }
        let text: String
        do {
            text = try String(contentsOfFile: configFile, encoding: .utf8)
        } catch {
            throw SettingError(message: "\(configFile): cannot read: \(error.localizedDescription)")
        }
        // The node tree, not Yams.load: its Any-based construction traps on a key that is not text (found by
        // Fuzz/FuzzConfigFile), where a configuration file must get an error.
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw SettingError(message: "\(configFile): not valid YAML: \(error)")
        }
        guard let node else {
            file = [:]
            return
        }
        guard case .map(let mapping) = try Self.fileValue(node, at: "", in: configFile) else {
            throw SettingError(message: "\(configFile): expected a mapping of settings at the top level")
        }
        file = mapping
        if let unknown = Self.unknownKey(in: mapping, prefix: "") {
            let known = Settings.all.map(\.key).joined(separator: ", ")
            throw SettingError(message: "\(configFile): unknown key '\(unknown)'; known keys: \(known)")
        }
    }

    /// The setting's text, from the first source that has it (nil: none has it and it has no default).
    public func string(_ setting: Setting) throws(SettingError) -> String? {
        try raw(setting).map { values, origin throws(SettingError) in
            guard let value = values.first, values.count == 1 else {
                throw SettingError(message: "\(origin) takes one value, not \(values.count)")
            }
            return value
        }
    }

    /// The setting as an integer.
    public func int(_ setting: Setting) throws(SettingError) -> Int? {
        try parsed(setting, as: "an integer") { Int($0) }
    }

    /// The setting as a number.
    public func double(_ setting: Setting) throws(SettingError) -> Double? {
        try parsed(setting, as: "a number") { Double($0) }
    }

    /// A switch: on when the flag is given, or `true`/`1` in the environment or the file; `absent` when no source sets it.
    public func bool(_ setting: Setting, absent: Bool = false) throws(SettingError) -> Bool {
        try parsed(setting, as: "true or false") { text in
            switch text.lowercased() {
            case "true", "1", "yes", "on": true
            case "false", "0", "no", "off", "": false
            default: nil
            }
        } ?? absent
    }

    /// A list setting's values (empty when no source has any).
    public func strings(_ setting: Setting) -> [String] {
        raw(setting)?.values ?? []
    }

    /// The setting parsed into one of a type's cases, naming the choices when the value is none of them.
    public func choice<T>(_ setting: Setting, among choices: [String], _ make: (String) -> T?) throws(SettingError) -> T? {
        try parsed(setting, as: "one of " + choices.joined(separator: ", "), make)
    }

    /// Where the setting's value came from, for messages: `--max-batch`, `ADAPTERD_MAX_BATCH`, a file key.
    public func origin(of setting: Setting) -> String? {
        raw(setting)?.origin
    }

    private func parsed<T>(_ setting: Setting, as expected: String, _ parse: (String) -> T?) throws(SettingError) -> T? {
        guard let (values, origin) = raw(setting) else { return nil }
        guard let text = values.first, values.count == 1 else {
            throw SettingError(message: "\(origin) takes one value, not \(values.count)")
        }
        guard let value = parse(text) else { throw SettingError(message: "\(origin) is '\(text)'; expected \(expected)") }
        return value
    }

    /// The values and their origin, from the first source that has the setting: the precedence in one place.
    private func raw(_ setting: Setting) -> (values: [String], origin: String)? {
        if let values = arguments[setting.key], !values.isEmpty {
            return (values, setting.flagName ?? setting.key)
        }
        if let name = setting.environment, let text = environment[name] {
            let values = setting.shape == .list ? text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } : [text]
            return (values, name)
        }
        if let value = lookup(setting.key) {
            let origin = "'\(setting.key)' in \(filePath ?? "the configuration file")"
            switch value {
            case .scalar(let text): return ([text], origin)
            case .list(let items): return (items.compactMap(Self.text(of:)), origin)
            case .map: return (Self.text(of: value).map { [$0] } ?? [], origin)
            }
        }
        if let text = setting.defaultValue {
            return (setting.shape == .list ? text.split(separator: ",").map(String.init) : [text], "the default")
        }
        return nil
    }

    private func lookup(_ key: String) -> FileValue? {
        var node: FileValue = .map(file)
        for part in key.split(separator: ".") {
            guard case .map(let mapping) = node, let next = mapping[String(part)] else { return nil }
            node = next
        }
        return node
    }

    /// A scalar's text; an adapter entry `{name, version, path}` as `NAME@VERSION=PATH`, the flag's form.
    private static func text(of value: FileValue) -> String? {
        switch value {
        case .scalar(let text): return text
        case .map(let entry):
            guard case .scalar(let name)? = entry["name"], case .scalar(let path)? = entry["path"] else { return nil }
            if case .scalar(let version)? = entry["version"] { return "\(name)@\(version)=\(path)" }
            return "\(name)=\(path)"
        case .list: return nil
        }
    }

    /// `node` as settings values: scalars as their text, parsed later like flag values.
    private static func fileValue(_ node: Node, at path: String, in file: String) throws(SettingError) -> FileValue {
        switch node {
        case .scalar(let scalar):
            return .scalar(scalar.string)
        case .sequence(let sequence):
            var items: [FileValue] = []
            for item in sequence { items.append(try fileValue(item, at: path, in: file)) }
            return .list(items)
        case .mapping(let mapping):
            var values: [String: FileValue] = [:]
            for (key, value) in mapping {
                guard case .scalar(let name) = key else {
                    throw SettingError(message: "\(file): a key\(path.isEmpty ? "" : " under '\(path)'") is not text")
                }
                let nested = path.isEmpty ? name.string : path + "." + name.string
                values[name.string] = try fileValue(value, at: nested, in: file)
            }
            return .map(values)
        @unknown default:
            throw SettingError(message: "\(file): '\(path)' holds a YAML node adapterd does not read")
        }
    }

    /// The first key of `mapping` that no setting has (nested keys dotted).
    private static func unknownKey(in mapping: [String: FileValue], prefix: String) -> String? {
        for key in mapping.keys.sorted() {
            let path = prefix + key
            if Settings.all.contains(where: { $0.key == path }) { continue }
            guard Settings.all.contains(where: { $0.key.hasPrefix(path + ".") }), case .map(let nested) = mapping[key]! else {
                return path
            }
            if let unknown = unknownKey(in: nested, prefix: path + ".") { return unknown }
        }
        return nil
    }
}

/// A setting could not be read: the message names where the value came from and what was expected.
public struct SettingError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}
