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

    /// Decodes the Kubernetes spelling; anything else is an error that lists the allowed values.
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let raw = try c.decode(String.self)
        guard let value = L4Protocol(rawValue: raw) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: unsupported(raw, L4Protocol.allCases))
        }
        self = value
    }
}

/// `unsupported value "ICMP": supported values: "TCP", "UDP", "SCTP"`, as the API server says it.
func unsupported<T: RawRepresentable<String>>(_ raw: String, _ allowed: [T]) -> String {
    "unsupported value \"\(raw)\": supported values: " + allowed.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
}
