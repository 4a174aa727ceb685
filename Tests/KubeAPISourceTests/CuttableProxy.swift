#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A loopback TCP relay whose connections a test can cut, as a flaky network or a load balancer
/// would: the client sees its connection drop while the server keeps running.
final class CuttableProxy: @unchecked Sendable {
    let port: UInt16
    private let upstreamPort: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var connections: Set<Int32> = []
    private var stopped = false

    init(upstreamPort: UInt16) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestServerError(message: "socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else { close(fd); throw TestServerError(message: "bind/listen: errno \(errno)") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        listener = fd
        port = UInt16(bigEndian: addr.sin_port)
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "test-proxy-accept"
        thread.start()
    }

    /// Drops every open connection (new ones are still accepted).
    func cutAll() {
        lock.withLock {
            for fd in connections { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    func stop() {
        lock.withLock { stopped = true }
        shutdown(listener, Int32(SHUT_RDWR))
        cutAll()
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                break
            }
            if lock.withLock({ stopped }) { close(client); break }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = Self.loopback(port: upstreamPort)
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if ok != 0 { close(client); close(upstream); continue }
            lock.withLock { connections.formUnion([client, upstream]) }
            let pair = Pair(a: client, b: upstream)
            for (from, to) in [(client, upstream), (upstream, client)] {
                let t = Thread { [self] in
                    pump(from: from, to: to)
                    finish(pair)
                }
                t.start()
            }
        }
        close(listener)
    }

    private final class Pair: @unchecked Sendable {
        let a: Int32, b: Int32
        var ended = 0
        init(a: Int32, b: Int32) { self.a = a; self.b = b }
    }

    private func pump(from: Int32, to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = read(from, &buffer, buffer.count)
            if n <= 0 { break }
            var off = 0
            while off < n {
                let w = buffer[off..<n].withUnsafeBytes { send(to, $0.baseAddress, n - off, Int32(MSG_NOSIGNAL)) }
                if w <= 0 { return }
                off += w
            }
        }
    }

    /// Both directions stop when either does; the second pump to end closes the descriptors.
    private func finish(_ pair: Pair) {
        let last: Bool = lock.withLock {
            pair.ended += 1
            if pair.ended == 1 {
                shutdown(pair.a, Int32(SHUT_RDWR))
                shutdown(pair.b, Int32(SHUT_RDWR))
                return false
            }
            connections.remove(pair.a)
            connections.remove(pair.b)
            return true
        }
        if last {
            close(pair.a)
            close(pair.b)
        }
    }
}
