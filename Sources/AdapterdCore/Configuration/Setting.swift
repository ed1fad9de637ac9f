/// One adapterd setting, declared once: its configuration-file key, command-line flag, environment variable,
/// default and meaning. `Settings.all` lists every one; `SettingSources` applies the precedence
/// flag > environment > file > default; README's configuration table is `Settings.markdownTable`.
public struct Setting: Sendable, Hashable {
    /// How a setting takes values.
    public enum Shape: Sendable, Hashable {
        /// One value.
        case value
        /// A list: a repeatable flag, a comma-separated environment variable, a YAML list.
        case list
        /// A switch: a flag without a value, `1`/`true` in the environment, a YAML boolean.
        case flag
    }

    /// The configuration file's key, dotted for nested keys (`security.adapterRoots`).
    public let key: String
    /// The long flag without dashes (`adapter-root`), or nil for file-only settings.
    public let flag: String?
    /// The environment variable (`ADAPTERD_ADAPTER_ROOTS`), or nil.
    public let environment: String?
    public let shape: Shape
    /// The default as a value would be written (parsed like one), or nil when the default is not a constant.
    public let defaultValue: String?
    /// The default as README states it, when it is not a constant (`host name`, `the CPU's best`).
    public let defaultDescription: String?
    /// How the flag's value is written in help and README (`NAME[@VERSION]=DIR`), when not obvious.
    public let valueName: String?
    /// What the setting does.
    public let summary: String

    init(
        _ key: String, flag: String? = nil, environment: String? = nil, shape: Shape = .value, default defaultValue: String? = nil,
        defaultDescription: String? = nil, valueName: String? = nil, _ summary: String
    ) {
        self.key = key
        self.flag = flag
        self.environment = environment
        self.shape = shape
        self.defaultValue = defaultValue
        self.defaultDescription = defaultDescription
        self.valueName = valueName
        self.summary = summary
    }

    /// `--flag`, for messages and help.
    public var flagName: String? { flag.map { "--" + $0 } }
}
