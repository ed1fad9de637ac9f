import Crypto
import Foundation

/// ed25519 keys for signed pushes. Key files hold the raw key in base64 on one line: the private key (32-byte
/// seed) in `NAME.key`, the public key in `NAME.pub`.
public enum SigningKeys {
    /// A new key pair: (private key file text, public key file text, key id).
    public static func generate() -> (privateKey: String, publicKey: String, keyID: String) {
        let key = Curve25519.Signing.PrivateKey()
        return (key.rawRepresentation.base64EncodedString(), key.publicKey.rawRepresentation.base64EncodedString(), keyID(key.publicKey))
    }

    /// Reads a private key file.
    public static func privateKey(file path: String) throws(PushError) -> Curve25519.Signing.PrivateKey {
        let text = try read(path)
        guard let raw = Data(base64Encoded: text), let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw .io(path: path, reason: "not an ed25519 private key (one line of base64, as adapterctl keys generate writes)")
        }
        return key
    }

    /// A public key from its base64 text or from a file holding it.
    public static func publicKey(_ textOrPath: String) throws(PushError) -> Curve25519.Signing.PublicKey {
        let text = textOrPath.contains("/") || textOrPath.hasSuffix(".pub") ? try read(textOrPath) : textOrPath
        guard let raw = Data(base64Encoded: text), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw .invalidManifest("trusted key '\(textOrPath)' is not an ed25519 public key (base64, or a .pub file)")
        }
        return key
    }

    /// Signs `manifest`'s signed text.
    public static func sign(_ manifest: PushManifest, with key: Curve25519.Signing.PrivateKey) throws -> [UInt8] {
        Array(try key.signature(for: manifest.signedText))
    }

    /// The first 16 hex digits of the SHA-256 of the raw public key: how logs and the audit trail name a signer.
    public static func keyID(_ key: Curve25519.Signing.PublicKey) -> String {
        String(AdapterDigest.hex(SHA256.hash(data: key.rawRepresentation)).prefix(16))
    }

    private static func read(_ path: String) throws(PushError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw .io(path: path, reason: "cannot read") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
