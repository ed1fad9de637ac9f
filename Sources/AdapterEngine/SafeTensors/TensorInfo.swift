/// One tensor's entry in a safetensors header.
public struct TensorInfo: Sendable, Equatable {
    /// Tensor name as written in the file.
    public let name: String
    /// Element type.
    public let dtype: DType
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// Byte range relative to the start of the data section.
    public let byteRange: Range<Int>

    /// Number of elements.
    public var elementCount: Int { shape.reduce(1, *) }
}
