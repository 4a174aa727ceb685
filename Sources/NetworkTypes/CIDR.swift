/// An IP prefix such as `10.244.0.0/16` or `fd00::/64`.
public struct CIDR: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    /// The network address, with host bits cleared.
    public let address: IPAddress
    public let prefixLength: Int

    /// Parses `addr/len`; a bare address is a host prefix (/32 or /128). Host bits set in the
    /// address are cleared, as Kubernetes' net.ParseCIDR does with the network it returns.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let ip = IPAddress(parts[0]) else { return nil }
        let maxLength = ip.family == .ipv4 ? 32 : 128
        var length = maxLength
        if parts.count == 2 {
            guard let l = Int(parts[1]), (0...maxLength).contains(l), !parts[1].hasPrefix("+") else { return nil }
            length = l
        }
        self.init(address: ip, prefixLength: length)
    }

    public init(address: IPAddress, prefixLength: Int) {
        self.prefixLength = prefixLength
        self.address = CIDR.mask(address, prefixLength)
    }

    public var family: IPFamily { address.family }

    public func contains(_ ip: IPAddress) -> Bool {
        ip.family == family && CIDR.mask(ip, prefixLength) == address
    }

    public var description: String { "\(address)/\(prefixLength)" }

    private static func mask(_ ip: IPAddress, _ length: Int) -> IPAddress {
        switch ip {
        case .v4(let v):
            let m: UInt32 = length == 0 ? 0 : ~UInt32(0) << (32 - UInt32(length))
            return .v4(v & m)
        case .v6(let hi, let lo):
            let mhi: UInt64 = length == 0 ? 0 : (length >= 64 ? ~0 : ~UInt64(0) << (64 - UInt64(length)))
            let mlo: UInt64 = length <= 64 ? 0 : (length == 128 ? ~0 : ~UInt64(0) << (128 - UInt64(length)))
            return .v6(hi & mhi, lo & mlo)
        }
    }

    public static func < (lhs: CIDR, rhs: CIDR) -> Bool {
        (lhs.address, lhs.prefixLength) < (rhs.address, rhs.prefixLength)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let v = CIDR(s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "invalid CIDR \"\(s)\"")
        }
        self = v
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
