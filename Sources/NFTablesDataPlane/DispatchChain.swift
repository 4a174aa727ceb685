import NetworkTypes
import ServiceTable

/// A chain shared by every service destination with the same way of choosing an endpoint:
/// its role, its number of endpoints, and its session-affinity timeout. There is one per
/// distinct combination in use (a handful in practice), never one per service: the
/// service-specific part is the key the chain's lookups use.
///
/// Without affinity: `numgen random mod N vmap { 0 : goto pick-0, … }`, and `pick-i` DNATs
/// through `@backends-i` (the i-th endpoint of every destination). With affinity, the endpoint's
/// slot travels in the skb priority: remembered per client in `@affinity`, or drawn at random
/// and remembered, then looked up in `@backends-affinity`.
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
        var isLocal: Bool { self == .externalLocal || self == .nodePortLocal }
        /// The dispatch chain marks the packet for masquerading itself.
        var masquerades: Bool { self == .external || self == .nodePort }
    }

    var family: IPFamily
    var role: Role
    /// Endpoints the destination's traffic goes to (for Local roles: the node's own).
    var endpointCount: Int
    /// ClientIP affinity timeout in seconds, nil without affinity.
    var affinityTimeout: Int?
    /// Local roles: the cluster-wide endpoints that pods on this node and the node itself use
    /// instead (kube-proxy's short circuit); 0 for other roles.
    var shortCircuitCount = 0

    var name: String {
        var n = "\(role.rawValue)-\(endpointCount)"
        if shortCircuitCount > 0 { n += "-cluster-\(shortCircuitCount)" }
        if let t = affinityTimeout { n += "-affinity-\(t)" }
        return n
    }

    private var pickKind: PickChain.Kind { role.isNodePort ? .nodePort : .service }
    private var shortCircuitKind: PickChain.Kind { role.isNodePort ? .nodePortCluster : .serviceCluster }

    /// The pick chains this chain jumps to.
    var picks: [PickChain] {
        var out: [PickChain] = []
        if affinityTimeout == nil {
            out += (0..<endpointCount).map { PickChain(family: family, kind: pickKind, index: $0) }
        }
        out += (0..<shortCircuitCount).map { PickChain(family: family, kind: shortCircuitKind, index: $0) }
        return out
    }

    /// Where endpoint `i` of a destination using this chain is stored (without affinity).
    func backends(_ i: Int) -> NFTShape.Collection {
        role.isNodePort ? .nodePortBackends(i) : .backends(i)
    }

    /// The maps an affinity destination uses: slot → endpoint, and position → slot.
    var affinityMaps: (backends: NFTShape.Collection, slots: NFTShape.Collection) {
        role.isNodePort ? (.nodePortBackendsAffinity, .nodePortAffinitySlots) : (.backendsAffinity, .affinitySlots)
    }

    /// Where cluster-wide endpoint `i` of a Local destination is stored for the short circuit.
    func shortCircuitBackends(_ i: Int) -> NFTShape.Collection {
        PickChain(family: family, kind: shortCircuitKind, index: i).map
    }

    /// Affinity slots of a destination's endpoints: a number derived from the endpoint's address
    /// and port, so a client remembered on an endpoint stays there while that endpoint stays,
    /// whatever else changes (kube-proxy keeps affinity per endpoint too); collisions within the
    /// destination move to the next free number. The slot is left as the skb priority of a
    /// connection's first packet (the DNAT ends the chain), so it stays below 0x10000: a priority
    /// whose major number is 0 never names a qdisc class directly.
    func affinitySlots(_ endpoints: [Endpoint]) -> [UInt32] {
        let mask: UInt32 = endpoints.count <= 0x8000 ? 0xFFFF : 0x7FFF_FFFF
        var taken = Set<UInt32>()
        return endpoints.map { ep in
            let h = Self.slotHash(ep)
            var slot = ((h >> 16) ^ h) & mask
            while taken.contains(slot) { slot = (slot &+ 1) & mask }
            taken.insert(slot)
            return slot
        }
    }

    /// FNV-1a over the address bytes and port: stable across processes (unlike `Hasher`).
    private static func slotHash(_ ep: Endpoint) -> UInt32 {
        var h: UInt32 = 2_166_136_261
        for b in ep.ip.bytes + [UInt8(ep.port >> 8), UInt8(ep.port & 0xff)] {
            h = (h ^ UInt32(b)) &* 16_777_619
        }
        return h
    }

    /// `numgen random mod N vmap { … }` over pick chains (a plain goto for one).
    private static func spread(_ picks: [PickChain]) -> String {
        if picks.count == 1 { return "goto \(picks[0].name)" }
        let arms = picks.map { "\($0.index) : goto \($0.name)" }.joined(separator: ", ")
        return "numgen random mod \(picks.count) vmap { \(arms) }"
    }

    func rules(_ f: NFTFamily) -> [String] {
        let a = f.payload
        // The chain's number rode here in the skb priority (see `NFTShape`): reset it to 0, the
        // priority nearly every packet has here, whatever happens next (a priority a socket set
        // with SO_PRIORITY is lost for the first packet of its connections to services).
        var rules = ["meta priority set none"]
        if shortCircuitCount > 0 {
            // External policy Local, but the client is a pod on this node or the node itself:
            // use every endpoint, as kube-proxy does (the node's own traffic is masqueraded).
            let cluster = Self.spread((0..<shortCircuitCount).map { PickChain(family: family, kind: shortCircuitKind, index: $0) })
            rules.append("\(a) saddr @\(NFTShape.Collection.clusterCIDRs.name) \(cluster)")
            rules.append("fib saddr type local meta mark set meta mark | \(NFTShape.hex(NFTShape.masqueradeBit)) \(cluster)")
        }
        // A Local destination without local endpoints: nothing to DNAT to; the filter drops it.
        guard endpointCount > 0 else { return rules }
        let key = role.isNodePort ? "meta l4proto . th dport" : "\(a) daddr . meta l4proto . th dport"
        if role.masquerades { rules.append("meta mark set meta mark | \(NFTShape.hex(NFTShape.masqueradeBit))") }
        guard let timeout = affinityTimeout else {
            rules.append(Self.spread((0..<endpointCount).map { PickChain(family: family, kind: pickKind, index: $0) }))
            return rules
        }
        // Session affinity: the skb priority carries the endpoint's slot from the client's entry
        // in @affinity — or from a random position turned into a slot — to the DNAT, and the
        // choice is (re)recorded with the service's timeout. A remembered slot whose endpoint is
        // gone misses in the backends map and falls through to a fresh pick.
        let (backends, slots) = affinityMaps
        let affinityKey = "\(a) saddr . \(a) daddr . meta l4proto . th dport"
        let record = "update @\(NFTShape.affinityMap) { \(affinityKey) timeout \(timeout)s : meta priority }"
        let dnat = "dnat to \(key) . meta priority map @\(backends.name)"
        rules.append("meta priority set \(affinityKey) map @\(NFTShape.affinityMap) \(record) \(dnat)")
        rules.append("meta priority set numgen random mod \(endpointCount)")
        rules.append("meta priority set \(key) . meta priority map @\(slots.name) \(record) \(dnat)")
        return rules
    }

    static func < (a: DispatchChain, b: DispatchChain) -> Bool {
        (a.family, a.role, a.endpointCount, a.shortCircuitCount, a.affinityTimeout ?? -1)
            < (b.family, b.role, b.endpointCount, b.shortCircuitCount, b.affinityTimeout ?? -1)
    }
}

/// `pick-i`: DNAT to endpoint number `i` of the destination, from `@backends-i`. Exists (with
/// its map) while some destination has more than `i` endpoints.
struct PickChain: Hashable, Sendable, Comparable {
    enum Kind: Int, Sendable, CaseIterable {
        /// Cluster, external and load-balancer IPs: `@backends-i`.
        case service
        /// Node ports: `@nodeport-backends-i`.
        case nodePort
        /// External-Local destinations reached from this node: `@ext-cluster-backends-i`.
        case serviceCluster
        /// Node ports with policy Local reached from this node: `@nodeport-cluster-backends-i`.
        case nodePortCluster

        var prefix: String {
            switch self {
            case .service: return "pick-"
            case .nodePort: return "np-pick-"
            case .serviceCluster: return "ext-cluster-pick-"
            case .nodePortCluster: return "np-cluster-pick-"
            }
        }
        var isNodePort: Bool { self == .nodePort || self == .nodePortCluster }
    }

    var family: IPFamily
    var kind: Kind
    var index: Int

    var name: String { kind.prefix + String(index) }

    var map: NFTShape.Collection {
        switch kind {
        case .service: return .backends(index)
        case .nodePort: return .nodePortBackends(index)
        case .serviceCluster: return .clusterBackends(index)
        case .nodePortCluster: return .nodePortClusterBackends(index)
        }
    }

    func rules(_ f: NFTFamily) -> [String] {
        let key = kind.isNodePort ? "meta l4proto . th dport" : "\(f.payload) daddr . meta l4proto . th dport"
        return ["dnat to \(key) map @\(map.name)"]
    }

    init(family: IPFamily, kind: Kind, index: Int) {
        self.family = family
        self.kind = kind
        self.index = index
    }

    /// Parses a chain name back (for chains found in the kernel).
    init?(family: IPFamily, name: String) {
        for kind in Kind.allCases where name.hasPrefix(kind.prefix) {
            if let i = Int(name.dropFirst(kind.prefix.count)) {
                self.init(family: family, kind: kind, index: i)
                return
            }
        }
        return nil
    }

    static func < (a: PickChain, b: PickChain) -> Bool {
        (a.family, a.kind.rawValue, a.index) < (b.family, b.kind.rawValue, b.index)
    }
}
