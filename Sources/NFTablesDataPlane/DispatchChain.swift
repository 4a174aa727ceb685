import NetworkTypes

/// A chain shared by every service destination with the same way of choosing an endpoint:
/// its role, its number of endpoints, and its session-affinity timeout. There is one per
/// distinct combination in use (a handful in practice), never one per service: the
/// service-specific part is the key the chain looks up in the backends map.
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

    /// The backends map this chain picks from.
    var backends: NFTShape.Collection {
        switch (role.isNodePort, affinityTimeout != nil) {
        case (false, false): return .backends
        case (false, true): return .backendsAffinity
        case (true, false): return .nodePortBackends
        case (true, true): return .nodePortBackendsAffinity
        }
    }

    /// The index stored for endpoint `i` in an affinity backends map: the masquerade bit rides
    /// along in the mark, so it is part of the key.
    func affinityIndex(_ i: Int) -> UInt32 {
        UInt32(i) | (role.masquerades ? NFTShape.masqueradeBit : 0)
    }

    func rules(_ f: NFTFamily) -> [String] {
        let a = f.payload
        let key = role.isNodePort ? "meta l4proto . th dport" : "\(a) daddr . meta l4proto . th dport"
        let map = "@\(backends.rawValue)"
        guard let timeout = affinityTimeout else {
            var rules: [String] = []
            if role.masquerades { rules.append("meta mark set meta mark | \(NFTShape.hex(NFTShape.masqueradeBit))") }
            rules.append("dnat to \(key) . numgen random mod \(endpointCount) map \(map)")
            return rules
        }
        // Session affinity: the packet mark carries the endpoint index from the lookup (or a
        // fresh random pick) to the DNAT; the choice is (re)recorded with the service's timeout.
        // A remembered index that no longer exists misses in the backends map and falls through.
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
