import MQTTRPC

/// The methods a server answers, by name: one registration per method.
public struct MethodTable: Sendable {
    private let methods: [String: RPCMethod]
    /// The method names, in registration order (as the unknown-method error lists them).
    public let names: [String]

    /// A table of `methods`; a name registered twice is a programming error.
    public init(_ methods: [RPCMethod]) {
        var table: [String: RPCMethod] = [:]
        for method in methods {
            precondition(table[method.name] == nil, "method '\(method.name)' is registered twice")
            table[method.name] = method
        }
        self.methods = table
        names = methods.map(\.name)
    }

    /// The method called `name`, if registered.
    public subscript(name: String) -> RPCMethod? { methods[name] }

    /// The error for a request naming a method the table lacks.
    public func unknown(_ name: String) -> RPCError {
        RPCError(.invalidArgument, "unknown method '\(name)'; methods: \(names.joined(separator: ", "))")
    }
}
