import NetworkTypes

/// The words one address family uses in the ruleset. kproxy keeps one table per family
/// (`ip kproxy`, `ip6 kproxy`) with the same shape, as kube-proxy runs one proxier per family.
public struct NFTFamily: Sendable, Hashable {
    public let ipFamily: IPFamily

    public init(_ ipFamily: IPFamily) { self.ipFamily = ipFamily }

    public static let ipv4 = NFTFamily(.ipv4)
    public static let ipv6 = NFTFamily(.ipv6)

    /// The nftables table family: `ip` or `ip6`.
    public var table: String { ipFamily == .ipv4 ? "ip" : "ip6" }
    /// The payload protocol in expressions: `ip daddr`, `ip6 daddr`.
    var payload: String { table }
    /// The address data type of set keys.
    var addressType: String { ipFamily == .ipv4 ? "ipv4_addr" : "ipv6_addr" }
    /// Loopback destinations never answer node ports (kube-proxy needs route_localnet for that).
    var loopback: String { ipFamily == .ipv4 ? "127.0.0.0/8" : "::1" }

    /// `table ip kproxy`'s name as it appears in commands: `ip kproxy`.
    var qualifiedTable: String { "\(table) \(NFTShape.tableName)" }
}
