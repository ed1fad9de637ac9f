import AdapterEngine
import Foundation
import Testing

@Suite("SafeTensorsFile")
struct SafeTensorsFileTests {
    /// Writes raw bytes to a new file and returns its path.
    static func file(_ bytes: [UInt8]) throws -> String {
        let path = Fixtures.temporaryDirectory() + "/t.safetensors"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A file whose header is `json` (padded) followed by `data` bytes.
    static func file(header json: String, dataBytes: Int) throws -> String {
        var header = Array(json.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
        bytes += header
        bytes += [UInt8](repeating: 0, count: dataBytes)
        return try file(bytes)
    }

    static func openError(_ path: String) -> SafeTensorsError? {
        do {
            _ = try SafeTensorsFile(path: path)
            return nil
        } catch {
            return error
        }
    }

    @Test("round-trips F32 zero-copy and converts F16 and BF16 to F32")
    func roundTrip() throws {
        var writer = SafeTensorsWriter()
        writer.add("a", shape: [2, 3], values: [1, -2, 3.5, 0, 1e-3, 65504])
        writer.add("h", shape: [3], values: [0.5, -1.25, 2048], dtype: .f16)
        writer.add("b", shape: [2], values: [1.5, -3], dtype: .bf16)
        writer.metadata = ["format": "pt"]
        let path = Fixtures.temporaryDirectory() + "/w.safetensors"
        try writer.data().write(to: URL(fileURLWithPath: path))
        let file = try SafeTensorsFile(path: path)
        #expect(file.metadata == ["format": "pt"])
        let a = try file.tensor("a")
        #expect(a.shape == [2, 3])
        #expect(a.storage.values == [1, -2, 3.5, 0, 1e-3, 65504])
        #expect(a.storage.isMapped)
        #expect(try file.tensor("h").storage.values == [0.5, -1.25, 2048])
        #expect(try file.tensor("b").storage.values == [1.5, -3])
        #expect(try file.tensor("h").storage.isMapped == false)
    }

    @Test("a file shorter than its 8-byte length prefix is refused")
    func truncatedPrefix() throws {
        let path = try Self.file([1, 2, 3])
        #expect(Self.openError(path) == .truncatedHeader(file: path, fileSize: 3))
    }

    @Test("a header length beyond the end of the file is refused")
    func headerTooLong() throws {
        let bytes = withUnsafeBytes(of: UInt64(4096).littleEndian) { Array($0) } + Array("{}".utf8)
        guard case .headerTooLarge? = Self.openError(try Self.file(bytes)) else {
            Issue.record("expected headerTooLarge")
            return
        }
    }

    @Test("a header that is not JSON is refused")
    func corruptJSON() throws {
        guard case .invalidHeader? = Self.openError(try Self.file(header: "{\"a\": {\"dtype\": ", dataBytes: 0)) else {
            Issue.record("expected invalidHeader")
            return
        }
    }

    @Test("an unknown dtype is refused naming the tensor")
    func unknownDType() throws {
        let path = try Self.file(header: #"{"w":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4)
        #expect(Self.openError(path) == .unknownDType(file: path, tensor: "w", dtype: "F12"))
    }

    @Test("a shape whose byte size differs from its data range is refused")
    func sizeMismatch() throws {
        let path = try Self.file(header: #"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#, dataBytes: 24)
        #expect(Self.openError(path) == .sizeMismatch(file: path, tensor: "w", shape: [2, 3], dtype: "F32", expectedBytes: 24, actualBytes: 20))
        #expect(Self.openError(path)?.description.contains("'w'") == true)
    }

    @Test("a data range past the end of the file is refused")
    func outOfBounds() throws {
        let path = try Self.file(header: #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#, dataBytes: 16)
        #expect(Self.openError(path) == .outOfBounds(file: path, tensor: "w", range: [8, 24], dataSize: 16))
    }

    @Test("overlapping tensors are refused")
    func overlapping() throws {
        let path = try Self.file(
            header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            dataBytes: 12)
        #expect(Self.openError(path) == .overlapping(file: path, first: "a", second: "b"))
    }

    @Test("negative dimensions are refused")
    func negativeShape() throws {
        let path = try Self.file(header: #"{"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,0]}}"#, dataBytes: 0)
        #expect(Self.openError(path) == .invalidShape(file: path, tensor: "w", shape: [-1, 4]))
    }

    @Test("reading a missing or integer tensor as floats is a typed error")
    func missingAndIntegerTensors() throws {
        let path = try Self.file(header: #"{"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, dataBytes: 8)
        let file = try SafeTensorsFile(path: path)
        #expect(throws: SafeTensorsError.notFloatingPoint(file: path, tensor: "i", dtype: "I64")) { try file.tensor("i") }
        #expect(throws: SafeTensorsError.missingTensor(file: path, tensor: "x")) { try file.tensor("x") }
    }

    @Test("a missing file is a clear error, not a crash")
    func missingFile() {
        guard case .cannotOpen? = Self.openError("/nonexistent/adapter_model.safetensors") else {
            Issue.record("expected cannotOpen")
            return
        }
    }
}
