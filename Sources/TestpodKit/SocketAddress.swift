#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address with a port, as `testpod` reads and prints it: `10.0.0.1:80`,
/// `[fd00::1]:80`. IPv4-mapped IPv6 addresses (what a dual-stack socket reports for an IPv4
/// peer) are printed as plain IPv4, so a test sees the address the pod really saw.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// `AF_INET` or `AF_INET6`.
    public let family: Int32
    /// The address in network byte order (4 or 16 bytes).
    public let address: [UInt8]
    public let port: UInt16

    public init?(ip: String, port: UInt16) {
        if ip.contains(":") {
            var a = in6_addr()
            guard inet_pton(AF_INET6, ip, &a) == 1 else { return nil }
            self.init(family: AF_INET6, address: withUnsafeBytes(of: &a) { Array($0) }, port: port)
        } else {
            var a = in_addr()
            guard inet_pton(AF_INET, ip, &a) == 1 else { return nil }
            self.init(family: AF_INET, address: withUnsafeBytes(of: &a) { Array($0) }, port: port)
        }
    }

    /// Parses `ADDR:PORT` or `[ADDR6]:PORT`.
    public init?(_ text: String) {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }  // a bare IPv6 address needs brackets
        }
        guard let port = UInt16(portText) else { return nil }
        self.init(ip: String(host), port: port)
    }

    init(family: Int32, address: [UInt8], port: UInt16) {
        // Unmap ::ffff:a.b.c.d so that IPv4 peers of a dual-stack socket read as IPv4.
        if family == AF_INET6, address.count == 16, address[0..<10].allSatisfy({ $0 == 0 }),
           address[10] == 0xff, address[11] == 0xff {
            self.family = AF_INET
            self.address = Array(address[12..<16])
        } else {
            self.family = family
            self.address = address
        }
        self.port = port
    }

    /// Reads what `accept`/`recvfrom`/`getsockname` filled in.
    init?(storage: sockaddr_storage) {
        var s = storage
        switch Int32(s.ss_family) {
        case AF_INET:
            let sin = withUnsafeBytes(of: &s) { $0.load(as: sockaddr_in.self) }
            var a = sin.sin_addr
            self.init(family: AF_INET, address: withUnsafeBytes(of: &a) { Array($0) },
                      port: UInt16(bigEndian: sin.sin_port))
        case AF_INET6:
            let sin6 = withUnsafeBytes(of: &s) { $0.load(as: sockaddr_in6.self) }
            var a = sin6.sin6_addr
            self.init(family: AF_INET6, address: withUnsafeBytes(of: &a) { Array($0) },
                      port: UInt16(bigEndian: sin6.sin6_port))
        default:
            return nil
        }
    }

    /// The address alone, without brackets or port.
    public var ip: String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let ok = address.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &buf, socklen_t(buf.count)) != nil
        }
        guard ok else { return "?" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String {
        family == AF_INET6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    /// Calls `body` with a `sockaddr` for this address.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if family == AF_INET {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { raw in for i in 0..<4 { raw[i] = address[i] } }
            return withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        } else {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { raw in for i in 0..<16 { raw[i] = address[i] } }
            return withUnsafePointer(to: &sin6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }
}
