// SHA256.swift: the digests the operator computes, by swift-crypto: SHA-256 as lowercase hex for configuration
// and object fingerprints, and PBKDF2-HMAC-SHA256 for the digest of the datasource secrets that Grafana stores.

import Crypto
import CryptoExtras

/// SHA-256, HMAC-SHA256 and PBKDF2-HMAC-SHA256 by swift-crypto, with hex output.
enum SHA256 {
    /// SHA-256 of the UTF-8 of `text`, as lowercase hex.
    static func hex(_ text: String) -> String {
        Self.hex(digest: Crypto.SHA256.hash(data: Array(text.utf8)))
    }

    /// Bytes as lowercase hex.
    static func hex(digest: some Sequence<UInt8>) -> String {
        digest.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
    }

    /// HMAC-SHA256 (RFC 2104).
    static func hmac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        Array(HMAC<Crypto.SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    /// The first 32 bytes of PBKDF2-HMAC-SHA256 (RFC 8018): a digest that costs `iterations` HMACs to guess.
    /// (The iteration count is Grafana-side obfuscation, not password storage: swift-crypto's checked variant
    /// asks for 210,000 rounds, too slow for every reconcile.)
    static func pbkdf2(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        // BoringSSL fails only for parameters outside its range (a 32-byte key and at least one round are not)
        // or when memory runs out.
        guard
            let key = try? KDF.Insecure.PBKDF2.deriveKey(
                from: password,
                salt: salt,
                using: .sha256,
                outputByteCount: 32,
                unsafeUncheckedRounds: max(1, iterations)
            )
        else { preconditionFailure("PBKDF2-HMAC-SHA256 failed with valid parameters") }
        return key.withUnsafeBytes { Array($0) }
    }
}
