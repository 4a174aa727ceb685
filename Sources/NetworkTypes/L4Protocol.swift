/// The transport protocols a Service port can carry, spelled as Kubernetes spells them.
public enum L4Protocol: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case tcp = "TCP"
    case udp = "UDP"
    case sctp = "SCTP"

    /// The lower-case name used by nftables, iptables and conntrack (`tcp`, `udp`, `sctp`).
    public var lowercased: String { rawValue.lowercased() }

    /// The IANA protocol number.
    public var number: UInt8 {
        switch self {
        case .tcp: return 6
        case .udp: return 17
        case .sctp: return 132
        }
    }

    public static func < (lhs: L4Protocol, rhs: L4Protocol) -> Bool { lhs.number < rhs.number }
}
