#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small POSIX socket helpers shared by the server and the probes. Blocking calls take a deadline.
enum Sock {
    static let streamType = Int32(SOCK_STREAM.rawValue)
    static let datagramType = Int32(SOCK_DGRAM.rawValue)
    static let sctpProtocol: Int32 = 132

    /// Milliseconds on the monotonic clock.
    static func nowMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// The symbolic name of an errno value (`ECONNREFUSED`, …), for reports.
    static func errnoName(_ e: Int32) -> String {
        switch e {
        case EPERM: return "EPERM"
        case EACCES: return "EACCES"
        case ECONNREFUSED: return "ECONNREFUSED"
        case ECONNRESET: return "ECONNRESET"
        case EHOSTUNREACH: return "EHOSTUNREACH"
        case ENETUNREACH: return "ENETUNREACH"
        case ETIMEDOUT: return "ETIMEDOUT"
        case EADDRNOTAVAIL: return "EADDRNOTAVAIL"
        case EADDRINUSE: return "EADDRINUSE"
        case EAFNOSUPPORT: return "EAFNOSUPPORT"
        case EPROTONOSUPPORT: return "EPROTONOSUPPORT"
        case EINVAL: return "EINVAL"
        case EPIPE: return "EPIPE"
        case EMSGSIZE: return "EMSGSIZE"
        case ENOBUFS: return "ENOBUFS"
        case EMFILE: return "EMFILE"
        default: return "errno\(e)"
        }
    }

    /// How a failed socket call maps onto a probe outcome.
    static func classify(_ e: Int32) -> ProbeOutcome {
        switch e {
        case ECONNREFUSED: return .refused
        case EHOSTUNREACH, ENETUNREACH: return .unreachable
        case ECONNRESET, EPIPE: return .reset
        case ETIMEDOUT: return .timeout
        default: return .error(errnoName(e))
        }
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Waits until `fd` is ready for `events` or the deadline passes. Returns the revents (0 on timeout).
    static func wait(_ fd: Int32, _ events: Int16, until deadline: Int64) -> Int16 {
        while true {
            let remaining = deadline - nowMs()
            if remaining <= 0 { return 0 }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&p, 1, Int32(min(remaining, Int64(Int32.max))))
            if n > 0 { return p.revents }
            if n == 0 { return 0 }
            if errno != EINTR { return Int16(POLLERR) }
        }
    }

    /// Opens a socket of `type`/`proto` and connects it to `target` (optionally from `source`),
    /// without blocking past the deadline. Returns the descriptor (non-blocking) or the outcome that
    /// stopped it.
    static func open(to target: SocketAddress, from source: SocketAddress?, type: Int32, proto: Int32,
                        until deadline: Int64) -> Result<Int32, ProbeFailure> {
        let fd = socket(target.family, type, proto)
        guard fd >= 0 else { return .failure(ProbeFailure(classify(errno))) }
        if let source {
            Sock.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            let rc = source.withSockaddr { bind(fd, $0, $1) }
            if rc != 0 {
                let e = errno
                close(fd)
                return .failure(ProbeFailure(.error("bind:" + errnoName(e))))
            }
        }
        setNonBlocking(fd)
        let rc = target.withSockaddr { connect(fd, $0, $1) }
        if rc != 0 {
            let e = errno
            guard e == EINPROGRESS else {
                close(fd)
                return .failure(ProbeFailure(classify(e)))
            }
            let revents = wait(fd, Int16(POLLOUT), until: deadline)
            if revents == 0 {
                close(fd)
                return .failure(ProbeFailure(.timeout))
            }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 {
                close(fd)
                return .failure(ProbeFailure(classify(err)))
            }
        }
        return .success(fd)
    }

    /// Sends all of `bytes` on a (possibly non-blocking) socket before the deadline.
    static func sendAll(_ fd: Int32, _ bytes: [UInt8], until deadline: Int64) -> ProbeOutcome? {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                offset += n
                continue
            }
            let e = errno
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) {
                if wait(fd, Int16(POLLOUT), until: deadline) == 0 { return .timeout }
                continue
            }
            return classify(e)
        }
        return nil
    }

    /// Reads one `\n`-terminated line from a stream socket, carrying over what follows it in `pending`.
    static func readLine(_ fd: Int32, pending: inout [UInt8], until deadline: Int64) -> Result<String, ProbeFailure> {
        var chunk = [UInt8](repeating: 0, count: 1024)
        while true {
            if let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<nl], as: UTF8.self)
                pending.removeSubrange(...nl)
                return .success(line)
            }
            if pending.count > 64 * 1024 { return .failure(ProbeFailure(.error("line too long"))) }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                pending.append(contentsOf: chunk[0..<n])
                continue
            }
            if n == 0 { return .failure(ProbeFailure(.reset)) }  // closed before a full line
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK || e == EINTR {
                if wait(fd, Int16(POLLIN), until: deadline) == 0 { return .failure(ProbeFailure(.timeout)) }
                continue
            }
            return .failure(ProbeFailure(classify(e)))
        }
    }

    /// Receives one datagram on a connected UDP socket before the deadline.
    static func receiveDatagram(_ fd: Int32, until deadline: Int64) -> Result<String, ProbeFailure> {
        var buf = [UInt8](repeating: 0, count: 2048)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n >= 0 {
                var bytes = buf[0..<n]
                if bytes.last == UInt8(ascii: "\n") { bytes = bytes.dropLast() }
                return .success(String(decoding: bytes, as: UTF8.self))
            }
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK || e == EINTR {
                if wait(fd, Int16(POLLIN), until: deadline) == 0 { return .failure(ProbeFailure(.timeout)) }
                continue
            }
            return .failure(ProbeFailure(classify(e)))
        }
    }

    /// Splits a pod's line `NAME ADDR:PORT` into the outcome it stands for.
    static func parseAnswer(_ line: String) -> ProbeOutcome {
        let trimmed = line.hasSuffix("\r") ? String(line.dropLast()) : line
        guard let space = trimmed.firstIndex(of: " ") else { return .answer(name: trimmed, source: nil) }
        let name = String(trimmed[..<space])
        let source = SocketAddress(String(trimmed[trimmed.index(after: space)...]))
        return .answer(name: name, source: source)
    }
}

/// A probe outcome that ended an attempt early (wrapped to satisfy `Result`'s `Error` requirement).
struct ProbeFailure: Error {
    let outcome: ProbeOutcome
    init(_ outcome: ProbeOutcome) { self.outcome = outcome }
}
