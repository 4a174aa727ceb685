#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one HTTP GET came to: for kproxy's /healthz and health-check node ports, without curl.
public struct HTTPResult: Sendable, Codable, Hashable {
    /// The status code, or nil when no response arrived.
    public var status: Int?
    public var body: String
    /// How the attempt failed when there is no status: `refused`, `timeout`, `reset`, …
    public var error: String?

    public init(status: Int?, body: String, error: String?) {
        self.status = status
        self.body = body
        self.error = error
    }
}

/// A minimal HTTP/1.0 GET over a plain socket (one request, read to EOF).
public struct HTTPGet: Sendable {
    public var target: SocketAddress
    public var path: String
    public var timeoutMs: Int

    public init(target: SocketAddress, path: String = "/", timeoutMs: Int = 2000) {
        self.target = target
        self.path = path
        self.timeoutMs = timeoutMs
    }

    public func run() -> HTTPResult {
        let deadline = Sock.nowMs() + Int64(timeoutMs)
        let fd: Int32
        switch Sock.open(to: target, from: nil, type: Sock.streamType, proto: 0, until: deadline) {
        case .failure(let f): return HTTPResult(status: nil, body: "", error: Self.name(f.outcome))
        case .success(let s): fd = s
        }
        defer { close(fd) }
        let host = target.family == AF_INET6 ? "[\(target.ip)]" : target.ip
        let request = "GET \(path) HTTP/1.0\r\nHost: \(host):\(target.port)\r\nConnection: close\r\n\r\n"
        if let failure = Sock.sendAll(fd, Array(request.utf8), until: deadline) {
            return HTTPResult(status: nil, body: "", error: Self.name(failure))
        }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                data.append(contentsOf: chunk[0..<n])
                if data.count > 1 << 20 { break }
                continue
            }
            if n == 0 { break }
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK || e == EINTR {
                if Sock.wait(fd, Int16(POLLIN), until: deadline) == 0 {
                    return Self.parse(data) ?? HTTPResult(status: nil, body: "", error: "timeout")
                }
                continue
            }
            return Self.parse(data) ?? HTTPResult(status: nil, body: "", error: Self.name(Sock.classify(e)))
        }
        return Self.parse(data) ?? HTTPResult(status: nil, body: "", error: "not HTTP")
    }

    /// `HTTP/1.1 200 OK\r\n…\r\n\r\nbody` → status and body.
    static func parse(_ data: [UInt8]) -> HTTPResult? {
        let text = String(decoding: data, as: UTF8.self)
        // "\r\n" is one Character in Swift: split on newlines, not on "\r".
        guard text.hasPrefix("HTTP/"), let statusLine = text.split(whereSeparator: \.isNewline).first else { return nil }
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return HTTPResult(status: status, body: body, error: nil)
    }

    static func name(_ outcome: ProbeOutcome) -> String {
        switch outcome {
        case .answer: return "answer"
        case .refused: return "refused"
        case .unreachable: return "unreachable"
        case .timeout: return "timeout"
        case .reset: return "reset"
        case .error(let e): return e
        }
    }
}
