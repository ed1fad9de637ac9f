import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import Foundation
import Testing

/// The method descriptors both sides use, against `schemas/adapterd.proto`.
@Suite("adapterd's RPC methods")
struct AdapterdMethodTests {
    /// `rpc Name(Request) returns (Reply);` lines of the schema, with the package's prefix on the message names.
    static func schemaMethods() throws -> [(name: String, request: String, reply: String)] {
        let text = try String(contentsOfFile: Harness.root + "/schemas/adapterd.proto", encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: #"rpc (\w+)\((\w+)\) returns \((\w+)\);"#)
        return pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { match in
            let part = { (index: Int) in String(text[Range(match.range(at: index), in: text)!]) }
            return (part(1), "adapterd.v1." + part(2), "adapterd.v1." + part(3))
        }
    }

    @Test("every method of the schema has a descriptor with its request and reply types, and no descriptor is extra")
    func descriptorsMatchTheSchema() throws {
        let schema = try Self.schemaMethods()
        try #require(!schema.isEmpty, "no rpc line found in schemas/adapterd.proto")
        #expect(schema.map(\.name) == AdapterdMethods.all.map(\.name))
        for (declared, described) in zip(schema, AdapterdMethods.all) {
            #expect(declared.request == described.request && declared.reply == described.reply, "\(declared.name): \(described)")
        }
    }

    @Test("the worker serves every control method of the schema")
    func workerServesEveryMethod() throws {
        let offline = try OfflineServices()
        let served = Set(offline.services.controlMethods.names + [offline.services.inferenceMethod.name])
        #expect(served == Set(AdapterdMethods.all.map(\.name)), "served \(served.sorted())")
    }
}
