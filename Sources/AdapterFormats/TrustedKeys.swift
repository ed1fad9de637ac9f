import Crypto
import Foundation

/// The public keys whose signatures a worker accepts on pushes.
public struct TrustedKeys: Sendable {
    /// Raw 32-byte public keys (kept raw: swift-crypto's key type is not `Sendable`).
    private let rawKeys: [Data]

    /// Keys from base64 texts or `.pub` files.
    public init(_ entries: [String]) throws(PushError) {
        var keys: [Data] = []
        for entry in entries { keys.append(try SigningKeys.publicKey(entry).rawRepresentation) }
        rawKeys = keys
    }

    /// Number of trusted keys.
    public var count: Int { rawKeys.count }

    private var keys: [Curve25519.Signing.PublicKey] {
        rawKeys.compactMap { try? Curve25519.Signing.PublicKey(rawRepresentation: $0) }
    }

    /// The id of the trusted key that made `signature` over `manifest`; throws when none did.
    public func verify(_ signature: [UInt8], for manifest: PushManifest) throws(PushError) -> String {
        let text = manifest.signedText
        guard let key = keys.first(where: { $0.isValidSignature(signature, for: text) }) else {
            throw .untrustedSignature(trustedKeys: keys.count)
        }
        return SigningKeys.keyID(key)
    }
}
