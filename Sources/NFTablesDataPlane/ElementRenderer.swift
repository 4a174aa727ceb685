import NetworkTypes
import ServiceTable

/// One component of an element's key or value.
enum NFTField: Hashable, Sendable {
    case address(IPAddress)
    case proto(L4Protocol)
    case port(UInt16)
    /// A prefix in an interval set.
    case cidr(CIDR)
    /// An skb priority (nft type `classid`): a dispatch chain's number, an affinity position or slot.
    case priority(UInt32)

    var text: String {
        switch self {
        case .address(let ip): return ip.description
        case .proto(let p): return p.lowercased
        case .port(let p): return String(p)
        case .cidr(let c): return c.description
        case .priority(let n): return NFTShape.classid(n)
        }
    }
}

/// What a map element maps to.
enum NFTValue: Hashable, Sendable {
    /// A verdict (`@dispatch-chains` only).
    case goto(String)
    /// A destination's dispatch chain, as the renderer names it; `RulesetState` turns it into
    /// the chain's number (`priority`) before anything is written. Boxed: every element of
    /// a full sync carries a value as large as the largest case.
    indirect case dispatch(DispatchChain)
    /// An skb priority: a dispatch chain's number (`@service-ips`, `@service-nodeports`) or an
    /// affinity slot (`@affinity-slots`).
    case priority(UInt32)
    case endpoint(IPAddress, UInt16)

    var text: String {
        switch self {
        case .goto(let chain): return "goto \(chain)"
        // Not nft syntax: an unresolved value must never reach the kernel.
        case .dispatch(let chain): return "<\(chain.name)>"
        case .priority(let n): return NFTShape.classid(n)
        case .endpoint(let ip, let port): return "\(ip) . \(port)"
        }
    }
}

/// One element of one of kproxy's named maps or sets.
struct NFTElement: Hashable, Sendable {
    var family: IPFamily
    var collection: NFTShape.Collection
    var key: [NFTField]
    /// The mapped value of a map element; nil in a set.
    var value: NFTValue?

    init(family: IPFamily, collection: NFTShape.Collection, key: [NFTField], value: NFTValue? = nil) {
        self.family = family
        self.collection = collection
        self.key = key
        self.value = value
    }

    var keyText: String { key.map(\.text).joined(separator: " . ") }
    var text: String { value.map { "\(keyText) : \($0.text)" } ?? keyText }
}

/// What one service port puts into the ruleset of one family: its elements and the shared
/// chains they jump to.
struct Contribution: Sendable {
    var elements: [NFTElement] = []
    var chains: [DispatchChain] = []
}

/// Renders service ports into map elements: a pure function of the entry and the family.
enum ElementRenderer {
    /// `nodeAddresses`: this node's addresses (for loadBalancerSourceRanges that include the node).
    static func contribution(of entry: ServicePortEntry, family: IPFamily,
                             nodeAddresses: [IPAddress] = []) -> Contribution {
        var c = Contribution()
        guard let clusterIP = entry.clusterIP(for: family) else { return c }
        let proto = NFTField.proto(entry.protocol)
        let port = NFTField.port(entry.port)
        // A single-stack entry's endpoints are all of its family (the table keeps only those).
        let singleStack = entry.clusterIPs.count == 1
        func ofFamily(_ eps: [Endpoint]) -> [Endpoint] { singleStack ? eps : eps.of(family) }
        let internalEPs = ofFamily(entry.internalEndpoints)
        let external = ofFamily(entry.externalEndpoints)
        let affinity = entry.sessionAffinityTimeout

        func add(_ coll: NFTShape.Collection, _ key: [NFTField], _ value: NFTValue? = nil) {
            c.elements.append(NFTElement(family: family, collection: coll, key: key, value: value))
        }
        /// Dispatch for one destination key (`addr . proto . port` or `proto . port`). Without an
        /// endpoint to send it to, traffic is rejected when the service has none at all
        /// (`noEndpoint`), dropped when a Local policy leaves none on this node (`noLocalEndpoint`).
        func dispatch(_ key: [NFTField], role: DispatchChain.Role, endpoints: [Endpoint],
                      entryMap: NFTShape.Collection,
                      noEndpoint: NFTShape.Collection, noLocalEndpoint: NFTShape.Collection) {
            // Local roles: clients on this node use every endpoint instead (kube-proxy's short circuit).
            let shortCircuit = role.isLocal ? ofFamily(entry.clusterEndpoints) : []
            if endpoints.isEmpty {
                add(entry.hasEndpoints ? noLocalEndpoint : noEndpoint, key)
                if shortCircuit.isEmpty { return }
            }
            let chain = DispatchChain(family: family, role: role, endpointCount: endpoints.count,
                                      affinityTimeout: endpoints.isEmpty ? nil : affinity,
                                      shortCircuitCount: shortCircuit.count)
            c.chains.append(chain)
            add(entryMap, key, .dispatch(chain))
            if chain.affinityTimeout != nil {
                let (backends, slots) = chain.affinityMaps
                for (i, slot) in chain.affinitySlots(endpoints).enumerated() {
                    add(slots, key + [.priority(UInt32(i))], .priority(slot))
                    add(backends, key + [.priority(slot)], .endpoint(endpoints[i].ip, endpoints[i].port))
                }
            } else {
                for i in endpoints.indices {
                    add(chain.backends(i), key, .endpoint(endpoints[i].ip, endpoints[i].port))
                }
            }
            for (i, ep) in shortCircuit.enumerated() {
                add(chain.shortCircuitBackends(i), key, .endpoint(ep.ip, ep.port))
            }
        }

        add(.clusterIPs, [.address(clusterIP)])
        dispatch([.address(clusterIP), proto, port], role: .clusterIP, endpoints: internalEPs,
                 entryMap: .serviceIPs,
                 noEndpoint: .noEndpointServices, noLocalEndpoint: .noLocalEndpointServices)

        let externalRole: DispatchChain.Role = entry.externalPolicyIsLocal ? .externalLocal : .external
        let externalIPs = entry.externalIPs.isEmpty && entry.loadBalancerIPs.isEmpty ? []
            : Array(Set(entry.externalIPs.of(family) + entry.loadBalancerIPs.of(family))).sorted()
        for ip in externalIPs {
            dispatch([.address(ip), proto, port], role: externalRole, endpoints: external,
                     entryMap: .serviceIPs,
                     noEndpoint: .noEndpointServices, noLocalEndpoint: .noLocalEndpointServices)
        }
        // As kube-proxy: source ranges are split by family, and a family without any is unrestricted.
        let ranges = minimalCover(entry.loadBalancerSourceRanges.filter { $0.family == family })
        if !ranges.isEmpty {
            // A range holding the node: a VIP-style load balancer's address is often local too,
            // and the node's own requests to it then come from the VIP itself (kube-proxy's allowFromNode).
            let allowFromNode = ranges.contains { r in nodeAddresses.contains { r.contains($0) } }
            for ip in entry.loadBalancerIPs.of(family) {
                let key: [NFTField] = [.address(ip), proto, port]
                add(.firewallIPs, key)
                let allowed = allowFromNode ? minimalCover(ranges + [CIDR(address: ip, prefixLength: family == .ipv4 ? 32 : 128)]) : ranges
                for range in allowed { add(.firewallAllow, key + [.cidr(range)]) }
            }
        }
        if let nodePort = entry.nodePort {
            dispatch([proto, .port(nodePort)], role: entry.externalPolicyIsLocal ? .nodePortLocal : .nodePort,
                     endpoints: external, entryMap: .nodePorts,
                     noEndpoint: .noEndpointNodePorts, noLocalEndpoint: .noLocalEndpointNodePorts)
        }
        // Hairpin: only a pod on this node can reach itself through this node's rules.
        let local = (internalEPs + external + (entry.externalPolicyIsLocal ? ofFamily(entry.clusterEndpoints) : []))
            .filter(\.isLocal)
        for ip in local.isEmpty ? [] : Set(local.map(\.ip)).sorted() {
            add(.hairpin, [.address(ip), .address(ip)])
        }
        return c
    }
}

/// The prefixes of `cidrs` not already covered by another: an interval set refuses overlapping
/// elements, and users may well write `10.0.0.0/8` and `10.1.0.0/16` together.
func minimalCover(_ cidrs: [CIDR]) -> [CIDR] {
    guard cidrs.count > 1 else { return cidrs }
    var kept: [CIDR] = []
    for c in cidrs.sorted(by: { ($0.prefixLength, $0.address) < ($1.prefixLength, $1.address) })
    where !kept.contains(where: { $0.family == c.family && $0.contains(c.address) }) {
        kept.append(c)
    }
    return kept.sorted()
}
