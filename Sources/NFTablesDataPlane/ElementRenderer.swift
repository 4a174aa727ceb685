import NetworkTypes
import ServiceTable

/// One element of one of kproxy's named maps or sets, as nft text.
struct NFTElement: Hashable, Sendable {
    var family: IPFamily
    var collection: NFTShape.Collection
    var key: String
    /// The mapped value of a map element (`goto svc-2`, `10.0.0.1 . 8080`); nil in a set.
    var value: String?

    init(family: IPFamily, collection: NFTShape.Collection, key: String, value: String? = nil) {
        self.family = family
        self.collection = collection
        self.key = key
        self.value = value
    }

    var text: String { value.map { "\(key) : \($0)" } ?? key }
}

/// What one service port puts into the ruleset of one family: its elements and the shared
/// dispatch chains they jump to.
struct Contribution: Sendable {
    var elements: [NFTElement] = []
    var chains: [DispatchChain] = []
    /// One per endpoint index used (0..<N for each non-affinity destination).
    var picks: [PickChain] = []
}

/// Renders service ports into map elements: a pure function of the entry and the family.
enum ElementRenderer {
    static func contribution(of entry: ServicePortEntry, family: IPFamily) -> Contribution {
        var c = Contribution()
        guard let clusterIP = entry.clusterIP(for: family) else { return c }
        let proto = entry.protocol.lowercased
        let port = entry.port
        let internalEPs = entry.internalEndpoints.of(family)
        let external = entry.externalEndpoints.of(family)
        let affinity = entry.sessionAffinityTimeout

        func add(_ coll: NFTShape.Collection, _ key: String, _ value: String? = nil) {
            c.elements.append(NFTElement(family: family, collection: coll, key: key, value: value))
        }
        /// Where traffic goes when there is no endpoint to send it to: rejected when the service
        /// has no endpoint at all, dropped when a Local policy leaves none on this node.
        func noEndpointVerdict() -> String { entry.hasEndpoints ? "drop" : "goto reject-chain" }

        /// Dispatch for one destination key (`addr . proto . port` or `proto . port`).
        func dispatch(_ key: String, role: DispatchChain.Role, endpoints: [Endpoint],
                      entryMap: NFTShape.Collection, noEndpointMap: NFTShape.Collection) {
            guard !endpoints.isEmpty else {
                add(noEndpointMap, key, noEndpointVerdict())
                return
            }
            let chain = DispatchChain(family: family, role: role, endpointCount: endpoints.count,
                                      affinityTimeout: affinity)
            c.chains.append(chain)
            add(entryMap, key, "goto \(chain.name)")
            c.picks.append(contentsOf: chain.picks)
            for (i, ep) in endpoints.enumerated() {
                let (map, suffix) = chain.backends(i)
                add(map, key + suffix, "\(ep.ip) . \(ep.port)")
            }
        }

        add(.clusterIPs, clusterIP.description)
        dispatch("\(clusterIP) . \(proto) . \(port)", role: .clusterIP, endpoints: internalEPs,
                 entryMap: .serviceIPs, noEndpointMap: .noEndpointServices)

        let externalRole: DispatchChain.Role = entry.externalPolicyIsLocal ? .externalLocal : .external
        let externalIPs = Array(Set(entry.externalIPs.of(family) + entry.loadBalancerIPs.of(family))).sorted()
        for ip in externalIPs {
            dispatch("\(ip) . \(proto) . \(port)", role: externalRole, endpoints: external,
                     entryMap: .serviceIPs, noEndpointMap: .noEndpointServices)
        }
        if !entry.loadBalancerSourceRanges.isEmpty {
            for ip in entry.loadBalancerIPs.of(family) {
                let key = "\(ip) . \(proto) . \(port)"
                add(.firewallIPs, key)
                for range in entry.loadBalancerSourceRanges where range.family == family {
                    add(.firewallAllow, "\(key) . \(range)")
                }
            }
        }
        if let nodePort = entry.nodePort {
            dispatch("\(proto) . \(nodePort)", role: entry.externalPolicyIsLocal ? .nodePortLocal : .nodePort,
                     endpoints: external, entryMap: .nodePorts, noEndpointMap: .noEndpointNodePorts)
        }
        // Hairpin: only a pod on this node can reach itself through this node's rules.
        for ip in Set((internalEPs + external).filter(\.isLocal).map(\.ip)).sorted() {
            add(.hairpin, "\(ip) . \(ip)")
        }
        return c
    }
}
