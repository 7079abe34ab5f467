// BPFError.swift: the error of the kernel's BPF and perf interfaces and of libbpf: which step failed, what was
// being done, and the kernel's errno where there is one.

#if canImport(Glibc)
import Glibc
#endif

/// An error from the kernel's BPF or perf interfaces, or from libbpf.
///
/// The code says which step failed; `errno` carries the kernel's reason where there is one.
public struct BPFError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case openObject, loadObject, programNotFound, mapNotFound, perfEventOpen, attach, mapOperation
            case unsupported
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// libbpf could not parse the embedded object.
        public static let openObject = Code(.openObject)
        /// The kernel refused to load the program or create its maps (verifier, permissions, memory).
        public static let loadObject = Code(.loadObject)
        /// The object has no program of the expected name.
        public static let programNotFound = Code(.programNotFound)
        /// The object has no map of the expected name.
        public static let mapNotFound = Code(.mapNotFound)
        /// `perf_event_open` failed for a CPU.
        public static let perfEventOpen = Code(.perfEventOpen)
        /// Attaching the program to a perf event failed.
        public static let attach = Code(.attach)
        /// A map lookup, update or delete failed.
        public static let mapOperation = Code(.mapOperation)
        /// The kernel lacks a feature the sampler needs.
        public static let unsupported = Code(.unsupported)

        public var description: String { "\(self.value)" }
    }

    public let code: Code
    /// What was being done, in words, e.g. "open cpu-clock event on CPU 3".
    public let message: String
    /// The kernel's errno, when the failure came with one.
    public let errno: Int32?

    public init(code: Code, message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    public var description: String {
        guard let errno = self.errno else { return "\(self.message) (\(self.code))" }
        return "\(self.message): \(String(cString: strerror(errno))) (errno \(errno), \(self.code))"
    }
}
