import AdapterEngine
import Foundation

/// Named F32 tensors, as a federated round moves them: the global adapter sent to the workers, and each worker's
/// trained tensors sent back. Travels as a safetensors file; reading one validates it as adapter files are.
public struct TensorSet: Sendable, Equatable {
    /// One tensor: PyTorch's shape and row-major values.
    public struct Entry: Sendable, Equatable {
        public var shape: [Int]
        public var values: [Float]

        /// A tensor of `shape` holding `values`.
        public init(shape: [Int], values: [Float]) {
            self.shape = shape
            self.values = values
        }
    }

    /// By PEFT's tensor name.
    public var tensors: [String: Entry]
    /// Free-form text fields carried in the file's `__metadata__`.
    public var metadata: [String: String]

    /// A set of `tensors` with `metadata`.
    public init(tensors: [String: Entry] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Reads a safetensors file's bytes (F32, F16 or BF16 tensors; others are refused). `name` is for errors.
    public init(safetensors bytes: [UInt8], name: String) throws(FederatedError) {
        do {
            let file = try SafeTensorsFile(mapping: MappedFile(copying: bytes, name: name))
            var tensors: [String: Entry] = [:]
            for (tensorName, info) in file.tensors {
                let tensor = try file.tensor(info)
                tensors[tensorName] = Entry(shape: tensor.shape, values: tensor.storage.values)
            }
            self.init(tensors: tensors, metadata: file.metadata)
        } catch {
            throw .malformed(what: name, reason: "\(error)")
        }
    }

    /// The safetensors file's bytes (F32, names sorted).
    public func safetensors() -> [UInt8] {
        var writer = SafeTensorsWriter()
        writer.metadata = metadata
        for (name, entry) in tensors { writer.add(name, shape: entry.shape, values: entry.values) }
        return Array(writer.data())
    }

    /// Tensor names, sorted.
    public var names: [String] { tensors.keys.sorted() }

    /// Number of values over all tensors.
    public var parameterCount: Int { tensors.values.reduce(0) { $0 + $1.values.count } }

    /// The tensors named `names` only.
    public func restricted(to names: some Sequence<String>) -> TensorSet {
        var subset = TensorSet(metadata: metadata)
        for name in names { subset.tensors[name] = tensors[name] }
        return subset
    }
}
