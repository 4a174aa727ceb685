import NetworkTypes

/// A chain shared by every service destination with the same way of choosing an endpoint:
/// its role, its number of endpoints, and its session-affinity timeout. There is one per
/// distinct combination in use (a handful in practice), never one per service: the
/// service-specific part is the key the chain's lookups use.
///
/// Without affinity: `numgen random mod N vmap { 0 : goto pick-0, … }`, and `pick-i` DNATs
/// through `@backends-i` (the i-th endpoint of every destination). With affinity, the index
/// travels in the packet mark: remembered per client in `@affinity`, or drawn at random and
/// remembered, then looked up in `@backends-affinity`.
struct DispatchChain: Hashable, Sendable, Comparable {
    enum Role: String, Sendable, Comparable {
        /// Cluster IP: internal endpoints; masquerading is decided in postrouting by source.
        case clusterIP = "svc"
        /// External or load-balancer IP, external policy Cluster: always masqueraded.
        case external = "ext"
        /// External or load-balancer IP, external policy Local: client source kept.
        case externalLocal = "ext-local"
        case nodePort = "np"
        case nodePortLocal = "np-local"

        static func < (a: Role, b: Role) -> Bool { a.rawValue < b.rawValue }

        var isNodePort: Bool { self == .nodePort || self == .nodePortLocal }
        /// The dispatch chain marks the packet for masquerading itself.
        var masquerades: Bool { self == .external || self == .nodePort }
    }

    var family: IPFamily
    var role: Role
    var endpointCount: Int
    /// ClientIP affinity timeout in seconds, nil without affinity.
    var affinityTimeout: Int?

    var name: String {
        var n = "\(role.rawValue)-\(endpointCount)"
        if let t = affinityTimeout { n += "-affinity-\(t)" }
        return n
    }

    /// The pick chains this chain jumps to (none with affinity).
    var picks: [PickChain] {
        guard affinityTimeout == nil else { return [] }
        return (0..<endpointCount).map { PickChain(family: family, nodePort: role.isNodePort, index: $0) }
    }

    /// Where endpoint `i` of a destination using this chain is stored, and the index that ends
    /// its key (affinity maps only).
    func backends(_ i: Int) -> (NFTShape.Collection, index: UInt32?) {
        switch (role.isNodePort, affinityTimeout != nil) {
        case (false, false): return (.backends(i), nil)
        case (true, false): return (.nodePortBackends(i), nil)
        case (false, true): return (.backendsAffinity, affinityIndex(i))
        case (true, true): return (.nodePortBackendsAffinity, affinityIndex(i))
        }
    }

    /// The index stored for endpoint `i` under affinity: the masquerade bit rides along in the
    /// mark, so it is part of the key.
    func affinityIndex(_ i: Int) -> UInt32 {
        UInt32(i) | (role.masquerades ? NFTShape.masqueradeBit : 0)
    }

    func rules(_ f: NFTFamily) -> [String] {
        let a = f.payload
        let key = role.isNodePort ? "meta l4proto . th dport" : "\(a) daddr . meta l4proto . th dport"
        guard let timeout = affinityTimeout else {
            var rules: [String] = []
            if role.masquerades { rules.append("meta mark set meta mark | \(NFTShape.hex(NFTShape.masqueradeBit))") }
            let picks = self.picks
            if picks.count == 1 {
                rules.append("goto \(picks[0].name)")
            } else {
                let arms = picks.map { "\($0.index) : goto \($0.name)" }.joined(separator: ", ")
                rules.append("numgen random mod \(endpointCount) vmap { \(arms) }")
            }
            return rules
        }
        // Session affinity: the packet mark carries the endpoint index from the lookup (or a
        // fresh random pick) to the DNAT; the choice is (re)recorded with the service's timeout.
        // A remembered index that no longer exists misses in the backends map and falls through.
        let map = "@\(backends(0).0.name)"
        let affinityKey = "\(a) saddr . \(a) daddr . meta l4proto . th dport"
        let record = "update @\(NFTShape.affinityMap) { \(affinityKey) timeout \(timeout)s : meta mark }"
        let offset = role.masquerades ? " offset \(NFTShape.hex(NFTShape.masqueradeBit))" : ""
        return [
            "meta mark set \(affinityKey) map @\(NFTShape.affinityMap) \(record) dnat to \(key) . meta mark map \(map)",
            "meta mark set numgen random mod \(endpointCount)\(offset) \(record) dnat to \(key) . meta mark map \(map)",
        ]
    }

    static func < (a: DispatchChain, b: DispatchChain) -> Bool {
        (a.family, a.role, a.endpointCount, a.affinityTimeout ?? -1) < (b.family, b.role, b.endpointCount, b.affinityTimeout ?? -1)
    }
}

/// `pick-i`: DNAT to endpoint number `i` of the destination, from `@backends-i`. Exists (with
/// its map) while some destination has more than `i` endpoints.
struct PickChain: Hashable, Sendable, Comparable {
    var family: IPFamily
    var nodePort: Bool
    var index: Int

    var name: String { nodePort ? "np-pick-\(index)" : "pick-\(index)" }
    var map: NFTShape.Collection { nodePort ? .nodePortBackends(index) : .backends(index) }

    func rules(_ f: NFTFamily) -> [String] {
        let key = nodePort ? "meta l4proto . th dport" : "\(f.payload) daddr . meta l4proto . th dport"
        return ["dnat to \(key) map @\(map.name)"]
    }

    /// Parses a chain name back (for chains found in the kernel).
    init?(family: IPFamily, name: String) {
        let np = name.hasPrefix("np-pick-")
        guard np || name.hasPrefix("pick-"), let i = Int(name.dropFirst(np ? 8 : 5)) else { return nil }
        self.init(family: family, nodePort: np, index: i)
    }

    init(family: IPFamily, nodePort: Bool, index: Int) {
        self.family = family
        self.nodePort = nodePort
        self.index = index
    }

    static func < (a: PickChain, b: PickChain) -> Bool {
        (a.family, a.nodePort ? 1 : 0, a.index) < (b.family, b.nodePort ? 1 : 0, b.index)
    }
}
