#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A listener could not be set up.
public struct ServerError: Error, CustomStringConvertible {
    public let description: String
}

/// The pod side of `testpod`: answers every TCP/SCTP connection and every UDP datagram with the
/// line `NAME CLIENT-ADDR:PORT`, so a test sees who answered and which source address the pod saw.
/// On a stream connection each further line the client sends is answered with the same line
/// (that is what `testpod stream` relies on). Listens dual-stack (`[::]`, IPv4 mapped) unless an
/// address is given. One thread per listener and per connection: small and obviously correct.
public final class Server: Sendable {
    public let name: String
    /// Bind address; `nil` means every address, IPv4 and IPv6.
    public let address: String?

    public init(name: String, address: String? = nil) {
        self.name = name
        self.address = address
    }

    /// Starts answering TCP (or SCTP) connections on `port` (0: any free port). Returns the bound port.
    @discardableResult
    public func serveStream(port: UInt16, sctp: Bool = false) throws -> UInt16 {
        let (fd, bound) = try Self.listener(type: Sock.streamType, proto: sctp ? Sock.sctpProtocol : 0,
                                            port: port, address: address, label: sctp ? "sctp" : "tcp")
        guard listen(fd, 512) == 0 else {
            let e = errno
            close(fd)
            throw ServerError(description: "listen on port \(port): \(Sock.errnoName(e))")
        }
        let name = self.name
        Thread.detachNewThread { @Sendable in Self.acceptLoop(fd, name: name) }
        return bound
    }

    /// Starts answering UDP datagrams on `port` (0: any free port). Returns the bound port.
    @discardableResult
    public func serveDatagram(port: UInt16) throws -> UInt16 {
        let (fd, bound) = try Self.listener(type: Sock.datagramType, proto: 0, port: port, address: address,
                                            label: "udp")
        let name = self.name
        Thread.detachNewThread { @Sendable in Self.datagramLoop(fd, name: name) }
        return bound
    }

    private static func listener(type: Int32, proto: Int32, port: UInt16, address: String?,
                                 label: String) throws -> (Int32, UInt16) {
        let what = "\(label) port \(port)"
        let local: SocketAddress
        var dualStack = false
        if let address {
            guard let a = SocketAddress(ip: address, port: port) else {
                throw ServerError(description: "not an IP address: \(address)")
            }
            local = a
        } else {
            local = SocketAddress(ip: "::", port: port)!
            dualStack = true
        }
        var fd = socket(local.family, type, proto)
        var target = local
        if fd < 0 && dualStack && errno == EAFNOSUPPORT {
            // No IPv6 in this namespace: fall back to IPv4 only.
            target = SocketAddress(ip: "0.0.0.0", port: port)!
            dualStack = false
            fd = socket(AF_INET, type, proto)
        }
        guard fd >= 0 else {
            let e = errno
            let hint = e == EPROTONOSUPPORT && proto == Sock.sctpProtocol ? " (this kernel has no SCTP)" : ""
            throw ServerError(description: "socket for \(what): \(Sock.errnoName(e))\(hint)")
        }
        Sock.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        if dualStack { Sock.setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 0) }
        let rc = target.withSockaddr { bind(fd, $0, $1) }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw ServerError(description: "bind \(target) for \(what): \(Sock.errnoName(e))")
        }
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &ss) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return (fd, SocketAddress(storage: ss)?.port ?? port)
    }

    private static func acceptLoop(_ fd: Int32, name: String) {
        while true {
            var ss = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let conn = withUnsafeMutablePointer(to: &ss) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(fd, $0, &len) }
            }
            if conn < 0 {
                let e = errno
                if e == EINTR || e == ECONNABORTED { continue }
                if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                    usleep(10_000)
                    continue
                }
                FileHandle.standardError.write(Data("testpod: accept: \(Sock.errnoName(e))\n".utf8))
                return
            }
            let peer = SocketAddress(storage: ss)
            Thread.detachNewThread { @Sendable in Self.serveConnection(conn, name: name, peer: peer) }
        }
    }

    private static func serveConnection(_ fd: Int32, name: String, peer: SocketAddress?) {
        defer { close(fd) }
        let line = Array("\(name) \(peer?.description ?? "?")\n".utf8)
        let forever = Int64.max
        if Sock.sendAll(fd, line, until: forever) != nil { return }
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            // One answer per line received.
            let lines = buf[0..<n].reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
            for _ in 0..<lines where Sock.sendAll(fd, line, until: forever) != nil { return }
        }
    }

    private static func datagramLoop(_ fd: Int32, name: String) {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            var ss = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = buf.withUnsafeMutableBytes { raw in
                withUnsafeMutablePointer(to: &ss) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &len)
                    }
                }
            }
            if n < 0 {
                let e = errno
                if e == EBADF || e == ENOTSOCK { return }
                // ICMP errors for earlier replies surface here on some kernels: keep serving.
                continue
            }
            let peer = SocketAddress(storage: ss)
            let reply = Array("\(name) \(peer?.description ?? "?")\n".utf8)
            _ = reply.withUnsafeBytes { raw in
                withUnsafePointer(to: &ss) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL), $0, len)
                    }
                }
            }
        }
    }
}
