import Foundation

/// A PEFT `adapter_config.json` for `peft_type: LORA`, reduced to what decides the forward pass.
///
/// DoRA (`use_dora`) is served: each adapted module then carries a magnitude vector. Options that would change
/// the math beyond that (LoRA biases, trained base biases, other PEFT methods…) are refused when parsed, naming the field, so an adapter never runs with silently different results.
public struct LoRAConfig: Sendable {
    /// The PEFT method (`peft_type`).
    public enum Method: String, Sendable {
        /// LoRA, and DoRA with `use_dora`.
        case lora = "LORA"
        /// IA³: learned vectors scaling a module's inputs (`feedforward_modules`) or outputs.
        case ia3 = "IA3"
        /// AdaLoRA: `lora_A`, `lora_E` (singular values) and `lora_B`, ranks pruned per module by its budget.
        case adalora = "ADALORA"
        /// LoHa: the Hadamard product of two low-rank products, `(w1a·w1b) ⊙ (w2a·w2b)`.
        case loha = "LOHA"
        /// LoKr: the Kronecker product of two factors, each full or low-rank.
        case lokr = "LOKR"
    }

    /// How `target_modules` selects modules.
    public enum Targets: Sendable, Equatable {
        /// A module matches when its name equals an entry or ends with "." + entry.
        case names([String])
        /// A module matches when the regular expression matches its whole name.
        case regex(String)
        /// PEFT's `"all-linear"`: every Linear layer except the classification head.
        case allLinear
    }

    public var method: Method
    /// IA³: the targeted modules whose inputs, not outputs, are scaled (a name matches when the module's name ends
    /// with it, as PEFT compares them).
    public var feedforwardModules: Targets?
    public var rank: Int
    /// `lora_alpha` (LoRA, AdaLoRA) or `alpha` (LoHa, LoKr).
    public var alpha: Double
    /// AdaLoRA's `init_r`: the rank its modules were created with, which stays their `ranknum` after pruning.
    public var initialRank: Int
    public var useRSLoRA: Bool
    /// DoRA (weight-decomposed LoRA): each adapted row's output is rescaled to its `lora_magnitude_vector` entry over
    /// the norm of `W + s·B·A`'s row.
    public var useDoRA: Bool
    public var targets: Targets
    public var excludeModules: Targets?
    public var layersToTransform: [Int]?
    public var layersPattern: [String]?
    /// Per-module ranks, first matching key wins (document order).
    public var rankPattern: [(pattern: String, rank: Int)]
    /// Per-module alphas, first matching key wins (document order).
    public var alphaPattern: [(pattern: String, alpha: Double)]
    public var fanInFanOut: Bool
    public var modulesToSave: [String]
    public var taskType: String?
    public var baseModel: String?

    /// Fields that do not change inference results (training-time settings, bookkeeping).
    static let inertFields: Set<String> = [
        "peft_type", "r", "lora_alpha", "use_rslora", "target_modules", "exclude_modules", "layers_to_transform",
        "layers_pattern", "rank_pattern", "alpha_pattern", "fan_in_fan_out", "modules_to_save", "bias", "use_dora",
        "lora_bias", "task_type", "base_model_name_or_path", "revision", "inference_mode", "init_lora_weights",
        "lora_dropout", "loftq_config", "megatron_config", "megatron_core", "auto_mapping", "peft_version",
        "runtime_config", "eva_config", "corda_config", "lora_ga_config", "qalora_group_size", "ensure_weight_tying",
        "layer_replication", "target_parameters", "trainable_token_indices", "use_qalora", "alora_invocation_tokens",
        "arrow_config", "use_bdlora", "monteclora_config", "velora_config", "kasa_config", "feedforward_modules", "init_ia3_weights",
        // LoHa and LoKr (training-time or convolution-only settings), AdaLoRA's budget schedule.
        "alpha", "rank_dropout", "module_dropout", "use_effective_conv2d", "init_weights", "decompose_both",
        "decompose_factor", "rank_dropout_scale", "target_r", "init_r", "tinit", "tfinal", "deltaT", "beta1", "beta2",
        "orth_reg_weight", "total_step",
    ]

    /// Fields that change the forward pass whenever they are set to anything but their default.
    /// Ranks and layer indices above this are refused: no real adapter comes near it, and a JSON number beyond
    /// Int's range would otherwise trap when converted (found by Fuzz/FuzzAdapterConfig).
    static let largestCount = 1 << 20

    /// `number` as a non-negative integer up to `largestCount`, or nil.
    static func count(_ number: Double) -> Int? {
        guard number >= 0, number <= Double(largestCount), let value = Int(exactly: number) else { return nil }
        return value
    }

    static let mathChangingFields: [String] = [
        "lora_bias", "layer_replication", "target_parameters", "trainable_token_indices", "use_qalora",
        "alora_invocation_tokens", "arrow_config", "use_bdlora", "monteclora_config", "velora_config", "kasa_config",
    ]

    /// Parses `adapter_config.json` bytes for the adapter called `adapter` (used in error messages).
    public init(json bytes: [UInt8], adapter: String) throws(AdapterError) {
        let root: JSONValue
        do {
            root = try JSONValue.parse(bytes)
        } catch {
            throw .invalidConfig(adapter: adapter, field: "(file)", reason: "not valid JSON: \(error)")
        }
        guard case .object(let members) = root else {
            throw .invalidConfig(adapter: adapter, field: "(file)", reason: "expected a JSON object")
        }
        func invalid(_ field: String, _ reason: String) -> AdapterError { .invalidConfig(adapter: adapter, field: field, reason: reason) }

        let peftType = root["peft_type"]
        guard case .string(let type) = peftType, let method = Method(rawValue: type) else {
            throw .unsupportedOption(adapter: adapter, field: "peft_type", value: peftType?.summary ?? "missing")
        }
        self.method = method
        if let bias = root["bias"], bias != .string("none"), bias != .null {
            throw .unsupportedOption(adapter: adapter, field: "bias", value: bias.summary)
        }
        for field in Self.mathChangingFields {
            if let value = root[field], !value.isEmptyOrDefault {
                throw .unsupportedOption(adapter: adapter, field: field, value: value.summary)
            }
        }
        // A field this engine does not know is accepted only while it is unset: a future PEFT option that is
        // actually in use may change the math, and refusing is safer than serving different numbers.
        for (key, value) in members where !Self.inertFields.contains(key) && !value.isEmptyOrDefault {
            throw .unsupportedOption(adapter: adapter, field: key, value: value.summary)
        }

        guard case .number(let r) = root["r"] ?? .number(8), let rank = Self.count(r), rank >= 1 else {
            throw invalid("r", "must be a positive integer up to \(Self.largestCount)")
        }
        self.rank = rank
        let alphaField = [.loha, .lokr].contains(method) ? "alpha" : "lora_alpha"
        guard case .number(let alpha) = root[alphaField] ?? .number(8), alpha.isFinite else {
            throw invalid(alphaField, "must be a number")
        }
        self.alpha = alpha
        guard case .number(let initial) = root["init_r"] ?? .number(12), let initialRank = Self.count(initial) else {
            throw invalid("init_r", "must be a non-negative integer up to \(Self.largestCount)")
        }
        self.initialRank = initialRank
        useRSLoRA = try Self.bool(root["use_rslora"], field: "use_rslora", adapter: adapter)
        useDoRA = try Self.bool(root["use_dora"], field: "use_dora", adapter: adapter)
        fanInFanOut = try Self.bool(root["fan_in_fan_out"], field: "fan_in_fan_out", adapter: adapter)

        guard let targetValue = root["target_modules"], targetValue != .null else {
            throw invalid("target_modules", "missing; the adapter does not say which layers it adapts")
        }
        targets = try Self.targets(targetValue, field: "target_modules", adapter: adapter)
        if method == .ia3, let feedforward = root["feedforward_modules"], feedforward != .null {
            feedforwardModules = try Self.targets(feedforward, field: "feedforward_modules", adapter: adapter)
        }
        if let exclude = root["exclude_modules"], exclude != .null {
            excludeModules = try Self.targets(exclude, field: "exclude_modules", adapter: adapter)
        }

        switch root["layers_to_transform"] ?? .null {
        case .null:
            layersToTransform = nil
        case .number(let number) where Self.count(number) != nil:
            layersToTransform = [Self.count(number)!]
        case .array(let values):
            layersToTransform = try values.map { value throws(AdapterError) -> Int in
                guard case .number(let number) = value, let index = Self.count(number) else {
                    throw invalid("layers_to_transform", "entries must be non-negative integers up to \(Self.largestCount)")
                }
                return index
            }
        default:
            throw invalid("layers_to_transform", "must be an integer or a list of integers")
        }
        switch root["layers_pattern"] ?? .null {
        case .null: layersPattern = nil
        case .string(let pattern): layersPattern = [pattern]
        case .array(let values):
            layersPattern = try values.map { value throws(AdapterError) -> String in
                guard case .string(let pattern) = value else { throw invalid("layers_pattern", "entries must be strings") }
                return pattern
            }
        default:
            throw invalid("layers_pattern", "must be a string or a list of strings")
        }
        if case .regex = targets, layersToTransform != nil {
            throw invalid("layers_to_transform", "cannot be used when target_modules is a regular expression (PEFT refuses this too)")
        }
        if let patterns = layersPattern, !patterns.isEmpty, layersToTransform == nil {
            throw invalid("layers_pattern", "only has a meaning together with layers_to_transform")
        }

        // AdaLoRA's rank_pattern holds each module's kept ranks as booleans; the saved tensors already have them.
        let ranks = method == .adalora ? nil : root["rank_pattern"]
        rankPattern = try Self.pattern(ranks, field: "rank_pattern", adapter: adapter).map { entry throws(AdapterError) in
            guard let rank = Self.count(entry.value), rank >= 1 else {
                throw invalid("rank_pattern", "rank for '\(entry.key)' must be a positive integer up to \(Self.largestCount)")
            }
            return (entry.key, rank)
        }
        alphaPattern = try Self.pattern(root["alpha_pattern"], field: "alpha_pattern", adapter: adapter).map { ($0.key, $0.value) }

        switch root["modules_to_save"] ?? .null {
        case .null: modulesToSave = []
        case .array(let values):
            modulesToSave = try values.map { value throws(AdapterError) -> String in
                guard case .string(let name) = value else { throw invalid("modules_to_save", "entries must be strings") }
                return name
            }
        default:
            throw invalid("modules_to_save", "must be a list of module names")
        }
        if case .string(let task) = root["task_type"] { taskType = task }
        if case .string(let base) = root["base_model_name_or_path"] { baseModel = base }
    }

    private static func bool(_ value: JSONValue?, field: String, adapter: String) throws(AdapterError) -> Bool {
        switch value ?? .null {
        case .null: return false
        case .bool(let flag): return flag
        default: throw .invalidConfig(adapter: adapter, field: field, reason: "must be true or false")
        }
    }

    private static func targets(_ value: JSONValue, field: String, adapter: String) throws(AdapterError) -> Targets {
        switch value {
        case .string("all-linear"):
            return .allLinear
        case .string(let pattern):
            do {
                _ = try Regex(pattern)
            } catch {
                throw .invalidConfig(adapter: adapter, field: field, reason: "'\(pattern)' is not a valid regular expression")
            }
            return .regex(pattern)
        case .array(let values):
            return .names(try values.map { entry throws(AdapterError) -> String in
                guard case .string(let name) = entry, !name.isEmpty else {
                    throw .invalidConfig(adapter: adapter, field: field, reason: "entries must be non-empty module names")
                }
                return name
            })
        default:
            throw .invalidConfig(adapter: adapter, field: field, reason: "must be a list of module names or a regular expression")
        }
    }

    private static func pattern(_ value: JSONValue?, field: String, adapter: String) throws(AdapterError) -> [(key: String, value: Double)] {
        switch value ?? .null {
        case .null:
            return []
        case .object(let members):
            return try members.map { member throws(AdapterError) -> (key: String, value: Double) in
                guard case .number(let number) = member.value, number.isFinite else {
                    throw .invalidConfig(adapter: adapter, field: field, reason: "value for '\(member.key)' must be a number")
                }
                do {
                    _ = try Regex("(.*\\.)?(\(member.key))")
                } catch {
                    throw .invalidConfig(adapter: adapter, field: field, reason: "key '\(member.key)' is not a valid regular expression")
                }
                return (member.key, number)
            }
        default:
            throw .invalidConfig(adapter: adapter, field: field, reason: "must be an object mapping module patterns to numbers")
        }
    }
}
