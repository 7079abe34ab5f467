// ScriptedHTTPServer.swift: a backend that misbehaves on purpose, over plain sockets: it answers every request with
// a head and then one body byte at a time, or with a fixed status and headers (429 with `Retry-After`), and records
// when each request arrived. The Pyroscope double answers well; this one is for what a slow or hostile backend does.

import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

final class ScriptedHTTPServer: Sendable {
    enum Answer: Sendable {
        /// `200` with a 60,000-byte body announced (under the pusher's 64 KiB answer limit), then one byte every `interval` until the client leaves.
        case drip(interval: Duration)
        /// `status` with these headers and an empty body, on a kept-alive connection.
        case status(Int, headers: [String: String])
    }

    let port: Int
    private let listener: Int32
    private let answer: Answer
    private let arrivals = Mutex<[ContinuousClock.Instant]>([])
    private let stopped = Atomic<Bool>(false)

    var url: String { "http://127.0.0.1:\(self.port)" }
    /// When each request's head and body had arrived.
    var requestTimes: [ContinuousClock.Instant] { self.arrivals.withLock { $0 } }

    init(answer: Answer) throws {
        self.answer = answer
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.listener = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in self.acceptLoop() }
        thread.name = "scripted-http"
        thread.start()
    }

    /// Stops accepting and ends every connection's answer at its next write.
    func stop() {
        self.stopped.store(true, ordering: .relaxed)
        shutdown(self.listener, Int32(SHUT_RDWR))
    }

    deinit { close(self.listener) }

    private func acceptLoop() {
        while !self.stopped.load(ordering: .relaxed) {
            let connection = accept(self.listener, nil, nil)
            guard connection >= 0 else {
                if errno == EINTR { continue }
                return
            }
            let thread = Thread { [self] in
                self.serve(connection)
                close(connection)
            }
            thread.start()
        }
    }

    private func serve(_ connection: Int32) {
        var pending: [UInt8] = []
        while !self.stopped.load(ordering: .relaxed), self.readRequest(connection, &pending) {
            self.arrivals.withLock { $0.append(.now) }
            switch self.answer {
            case .drip(let interval):
                guard self.write(connection, "HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n") else { return }
                while !self.stopped.load(ordering: .relaxed), self.write(connection, "x") {
                    Thread.sleep(
                        forTimeInterval: Double(interval.components.seconds)
                            + Double(interval.components.attoseconds) / 1e18
                    )
                }
                return
            case .status(let status, let headers):
                var head = "HTTP/1.1 \(status) Scripted\r\nContent-Length: 0\r\n"
                for (name, value) in headers.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
                guard self.write(connection, head + "\r\n") else { return }
            }
        }
    }

    /// Reads one request (head, and a body of its Content-Length); false when the client closed first.
    private func readRequest(_ connection: Int32, _ pending: inout [UInt8]) -> Bool {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        var bodyLength = 0
        while true {
            if headEnd == nil, let range = pending.firstRange(of: separator) {
                headEnd = range.upperBound
                let head = String(decoding: pending[..<range.lowerBound], as: UTF8.self).lowercased()
                for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                    bodyLength = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let end = headEnd, pending.count >= end + bodyLength {
                pending.removeFirst(end + bodyLength)
                return true
            }
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            let n = recv(connection, &buffer, buffer.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            pending += buffer[..<n]
        }
    }

    private func write(_ connection: Int32, _ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }
}
