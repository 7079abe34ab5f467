// LibbpfLog.swift: libbpf's process-wide print hook routed into a swift-log Logger (warnings as warnings, info as
// debug, the rest as trace), through the C trampoline in CLibbpf's shim.

internal import CLibbpf
import Logging
import Synchronization

/// Routes libbpf's messages into a swift-log `Logger`.
///
/// libbpf has one process-wide print hook, so the logger lives in a process-wide `Mutex`; the last sampler to
/// install one wins, which is fine because every sampler logs the same way.
enum LibbpfLog {
    private static let logger = Mutex<Logger?>(nil)

    static func install(_ logger: Logger) {
        Self.logger.withLock { $0 = logger }
        CLibbpf_route_print()
    }

    fileprivate static func log(level: Int32, line: String) {
        let text = line.trimmingTrailingNewlines()
        Self.logger.withLock { logger in
            switch UInt32(level) {
            case LIBBPF_WARN.rawValue: logger?.warning("\(text)", metadata: ["source": "libbpf"])
            case LIBBPF_INFO.rawValue: logger?.debug("\(text)", metadata: ["source": "libbpf"])
            default: logger?.trace("\(text)", metadata: ["source": "libbpf"])
            }
        }
    }
}

/// Called by the C trampoline in CLibbpf's shim for each libbpf message.
@_cdecl("HearthSampler_libbpf_line")
func hearthSamplerLibbpfLine(_ level: Int32, _ line: UnsafePointer<CChar>?) {
    guard let line else { return }
    LibbpfLog.log(level: level, line: String(cString: line))

}

extension String {
    fileprivate func trimmingTrailingNewlines() -> String {
        var result = self
        while result.last == "\n" { result.removeLast() }
        return result
    }
}
