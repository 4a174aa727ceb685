#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The address family of an IP address: kube-proxy's `IPv4` / `IPv6`.
public enum IPFamily: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case ipv4 = "IPv4"
    case ipv6 = "IPv6"

    public static func < (lhs: IPFamily, rhs: IPFamily) -> Bool { lhs == .ipv4 && rhs == .ipv6 }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let raw = try c.decode(String.self)
        guard let value = IPFamily(rawValue: raw) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: unsupported(raw, IPFamily.allCases))
        }
        self = value
    }
}

/// An IPv4 or IPv6 address, parsed and printed in canonical form (RFC 5952 for IPv6).
public enum IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    case v4(UInt32)
    case v6(UInt64, UInt64)

    /// Parses a textual address; `nil` when it is not a valid IPv4 or IPv6 address.
    /// IPv4 must be dotted quad (no leading zeros ambiguity beyond what inet_pton accepts).
    public init?(_ text: some StringProtocol) {
        let s = String(text)
        if s.contains(":") {
            var a = in6_addr()
            guard inet_pton(AF_INET6, s, &a) == 1 else { return nil }
            let bytes = withUnsafeBytes(of: &a) { Array($0) }
            var hi: UInt64 = 0, lo: UInt64 = 0
            for i in 0..<8 { hi = hi << 8 | UInt64(bytes[i]) }
            for i in 8..<16 { lo = lo << 8 | UInt64(bytes[i]) }
            self = .v6(hi, lo)
        } else {
            var a = in_addr()
            guard inet_pton(AF_INET, s, &a) == 1 else { return nil }
            self = .v4(UInt32(bigEndian: a.s_addr))
        }
    }

    public var family: IPFamily {
        switch self {
        case .v4: return .ipv4
        case .v6: return .ipv6
        }
    }

    /// The address in network byte order.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let v):
            return [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
        case .v6(let hi, let lo):
            return (0..<8).map { UInt8(hi >> (56 - 8 * UInt64($0)) & 0xff) }
                + (0..<8).map { UInt8(lo >> (56 - 8 * UInt64($0)) & 0xff) }
        }
    }

    public var description: String {
        switch self {
        case .v4(let v):
            return "\(v >> 24).\(v >> 16 & 0xff).\(v >> 8 & 0xff).\(v & 0xff)"
        case .v6:
            var a = in6_addr()
            let b = bytes
            withUnsafeMutableBytes(of: &a) { raw in for i in 0..<16 { raw[i] = b[i] } }
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count)) != nil else { return "::" }
            return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// The address as it appears inside a URL or an `ip:port` pair (`[::1]` for IPv6).
    public var bracketed: String {
        family == .ipv6 ? "[\(description)]" : description
    }

    public var isLoopback: Bool {
        switch self {
        case .v4(let v): return v >> 24 == 127
        case .v6(let hi, let lo): return hi == 0 && lo == 1
        }
    }

    public var isUnspecified: Bool {
        switch self {
        case .v4(let v): return v == 0
        case .v6(let hi, let lo): return hi == 0 && lo == 0
        }
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        switch (lhs, rhs) {
        case (.v4(let a), .v4(let b)): return a < b
        case (.v6(let a1, let a2), .v6(let b1, let b2)): return (a1, a2) < (b1, b2)
        case (.v4, .v6): return true
        case (.v6, .v4): return false
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let ip = IPAddress(s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "invalid IP address \"\(s)\"")
        }
        self = ip
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
