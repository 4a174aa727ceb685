import NetworkTypes
import ServiceTable

/// The fixed part of kproxy's ruleset: its named maps and sets, and the base chains that look
/// traffic up in them. Dispatch is O(1) whatever the number of services: a packet's
/// `daddr . l4proto . dport` (or `l4proto . dport` for node ports) is looked up in a data map
/// that gives the number of its shared dispatch chain (see `DispatchChain`), and that number in
/// the small verdict map `@dispatch-chains`; the chain picks an endpoint with one lookup in a
/// backends map keyed `daddr . l4proto . dport`. Everything that changes with services is an
/// element of a named map, so a sync is a set of element changes and the number of chains stays
/// small.
///
/// No per-service element is a verdict. The kernel validates a whole table (every element of
/// every verdict map reachable from a base chain) whenever a transaction adds a `goto` or `jump`;
/// with one verdict per service that cost 22 ms at 50k services each time a service changed
/// dispatch chain (scaled by one endpoint). The chain number travels from one lookup to the next
/// in the packet's skb priority (nft 1.0.6 cannot feed one lookup into another within a rule),
/// which the dispatch chain resets to 0 (or, with session affinity, leaves holding the endpoint's
/// slot): only the first packet of a new connection passes through, and the packet mark, which
/// CNIs and policy routing use, stays untouched but for kube-proxy's 0x4000 masquerade bit.
public enum NFTShape {
    public static let tableName = "kproxy"
    /// kube-proxy's masquerade mark bit.
    public static let masqueradeBit: UInt32 = 0x4000
    /// Entries the session-affinity map can hold per family.
    static let affinitySize = 262_144

    /// The named maps and sets whose elements come from the service table.
    enum Collection: Hashable, Sendable, Comparable {
        /// `daddr . l4proto . dport` of cluster, external and load-balancer IPs → dispatch chain number.
        case serviceIPs
        /// `l4proto . dport` of node ports → dispatch chain number.
        case nodePorts
        /// Dispatch chain number → `goto` the chain: one element per dispatch chain in use.
        case dispatchChains
        /// Endpoint number `i` of every service destination with more than `i` endpoints:
        /// `daddr . l4proto . dport` → endpoint `addr . port`. One map per index (created while some
        /// service has that many endpoints), so no map key needs the random number itself.
        case backends(Int)
        /// The same for node ports, keyed `l4proto . dport`.
        case nodePortBackends(Int)
        /// External-Local destinations: their cluster-wide endpoints, for clients on this node.
        case clusterBackends(Int)
        case nodePortClusterBackends(Int)
        /// Session-affinity services: `daddr . l4proto . dport . slot` → endpoint, where the slot is
        /// a stable number derived from the endpoint (it travels in the skb priority)…
        case backendsAffinity
        case nodePortBackendsAffinity
        /// … and `daddr . l4proto . dport . position` → slot, to turn a random pick into a slot.
        case affinitySlots
        case nodePortAffinitySlots
        /// Every cluster IP: traffic still addressed to one after DNAT is rejected (unknown port).
        case clusterIPs
        /// Service ports without any endpoint: rejected.
        case noEndpointServices
        case noEndpointNodePorts
        /// Service ports whose Local policy leaves no endpoint on this node: dropped.
        case noLocalEndpointServices
        case noLocalEndpointNodePorts
        /// Load-balancer `daddr . l4proto . dport` restricted by `loadBalancerSourceRanges`…
        case firewallIPs
        /// … and the `daddr . l4proto . dport . saddr-range` allowed to reach them.
        case firewallAllow
        /// `endpoint . endpoint` pairs: a pod reaching itself through a service is masqueraded.
        case hairpin
        /// Settings, not services: `--cluster-cidr` and `--nodeport-addresses`.
        case clusterCIDRs
        case nodePortAddresses

        /// The collections that always exist (per-index backends maps come and go with their pick chains).
        static let fixed: [Collection] = [
            .serviceIPs, .nodePorts, .dispatchChains, .backendsAffinity, .nodePortBackendsAffinity,
            .affinitySlots, .nodePortAffinitySlots, .clusterIPs,
            .noEndpointServices, .noEndpointNodePorts, .noLocalEndpointServices, .noLocalEndpointNodePorts,
            .firewallIPs, .firewallAllow, .hairpin, .clusterCIDRs, .nodePortAddresses,
        ]

        var name: String {
            switch self {
            case .serviceIPs: return "service-ips"
            case .nodePorts: return "service-nodeports"
            case .dispatchChains: return "dispatch-chains"
            case .backends(let i): return "backends-\(i)"
            case .nodePortBackends(let i): return "nodeport-backends-\(i)"
            case .clusterBackends(let i): return "ext-cluster-backends-\(i)"
            case .nodePortClusterBackends(let i): return "nodeport-cluster-backends-\(i)"
            case .backendsAffinity: return "backends-affinity"
            case .nodePortBackendsAffinity: return "nodeport-backends-affinity"
            case .affinitySlots: return "affinity-slots"
            case .nodePortAffinitySlots: return "nodeport-affinity-slots"
            case .clusterIPs: return "cluster-ips"
            case .noEndpointServices: return "no-endpoint-services"
            case .noEndpointNodePorts: return "no-endpoint-nodeports"
            case .noLocalEndpointServices: return "no-local-endpoint-services"
            case .noLocalEndpointNodePorts: return "no-local-endpoint-nodeports"
            case .firewallIPs: return "firewall-ips"
            case .firewallAllow: return "firewall-allow"
            case .hairpin: return "hairpin"
            case .clusterCIDRs: return "cluster-cidrs"
            case .nodePortAddresses: return "nodeport-addresses"
            }
        }

        static func < (a: Collection, b: Collection) -> Bool { a.name < b.name }

        /// Interval sets (prefixes): always loaded through libnftables, which splits them into ranges.
        var isInterval: Bool {
            switch self {
            case .firewallAllow, .clusterCIDRs, .nodePortAddresses: return true
            default: return false
            }
        }

        /// Elements shared by several service ports (a cluster IP of a multi-port service, a
        /// hairpin pair of an endpoint several services use): reference-counted. Every other
        /// element's key belongs to one service port.
        var isShared: Bool { self == .clusterIPs || self == .hairpin }

        /// Maps carry a value per key; sets do not.
        var isMap: Bool {
            switch self {
            case .serviceIPs, .nodePorts, .dispatchChains, .backends, .nodePortBackends, .clusterBackends,
                 .nodePortClusterBackends, .backendsAffinity, .nodePortBackendsAffinity, .affinitySlots,
                 .nodePortAffinitySlots: return true
            default: return false
            }
        }

        // Plain `type` declarations throughout: nft 1.0.6 cannot re-evaluate a cached map whose
        // `typeof` data is `ip daddr . th dport` ("conflicting protocols specified: ip vs. th")
        // once a later command references it, and `typeof … tcp dport` would add a TCP-only match.
        func declaration(_ f: NFTFamily) -> String {
            let t = f.addressType
            // Destination keys: `addr . proto . port`, or `proto . port` for node ports.
            let service = "\(t) . inet_proto . inet_service", nodePort = "inet_proto . inet_service"
            let endpoint = "\(t) . inet_service"
            let body: String
            switch self {
            case .serviceIPs: body = "type \(service) : classid;"
            case .nodePorts: body = "type \(nodePort) : classid;"
            case .dispatchChains: body = "type classid : verdict;"
            case .noEndpointServices, .noLocalEndpointServices, .firewallIPs: body = "type \(service);"
            case .noEndpointNodePorts, .noLocalEndpointNodePorts: body = "type \(nodePort);"
            case .backends, .clusterBackends: body = "type \(service) : \(endpoint);"
            case .nodePortBackends, .nodePortClusterBackends: body = "type \(nodePort) : \(endpoint);"
            case .backendsAffinity: body = "type \(service) . classid : \(endpoint);"
            case .nodePortBackendsAffinity: body = "type \(nodePort) . classid : \(endpoint);"
            case .affinitySlots: body = "type \(service) . classid : classid;"
            case .nodePortAffinitySlots: body = "type \(nodePort) . classid : classid;"
            case .clusterIPs: body = "type \(t);"
            case .firewallAllow: body = "type \(service) . \(t); flags interval;"
            case .hairpin: body = "type \(t) . \(t);"
            case .clusterCIDRs, .nodePortAddresses: body = "type \(t); flags interval;"
            }
            return "add \(isMap ? "map" : "set") \(f.qualifiedTable) \(name) { \(body) }"
        }
    }

    /// The dynamic map of session-affinity choices, `saddr . daddr . l4proto . dport` → endpoint
    /// slot (as an skb priority). Filled by the packet path, so syncs never flush it.
    static let affinityMap = "affinity"

    static func affinityDeclaration(_ f: NFTFamily) -> String {
        let a = f.payload
        return "add map \(f.qualifiedTable) \(affinityMap) { typeof \(a) saddr . \(a) daddr . meta l4proto . th dport : meta priority; size \(affinitySize); flags dynamic, timeout; timeout 3h; }"
    }

    /// A base or helper chain of the fixed shape: its declaration and its rules.
    struct FixedChain {
        var name: String
        /// `type nat hook prerouting priority -100;`, or nil for a regular chain.
        var hook: String?
        var rules: [String]
    }

    /// The fixed chains for one family under the node-wide settings.
    /// `dropInvalid`: drop forwarded packets conntrack finds invalid, as kube-proxy does unless
    /// `nf_conntrack_tcp_be_liberal` is set (otherwise they can reset connections, kubernetes#74839).
    static func fixedChains(_ f: NFTFamily, settings: ProxySettings, dropInvalid: Bool = true) -> [FixedChain] {
        let a = f.payload
        let key = "\(a) daddr . meta l4proto . th dport"
        let cidrs = settings.clusterCIDRs.filter { $0.family == f.ipFamily }
        let npAll = settings.nodePortAddresses.isEmpty
        let npOfFamily = settings.nodePortAddresses.filter { $0.family == f.ipFamily }
        // Which destinations answer node ports: every local address but loopback, or those local
        // addresses inside --nodeport-addresses. None when that list has no range of this family.
        let nodePortMatch: String? = npAll
            ? "fib daddr type local \(a) daddr != \(f.loopback)"
            : (npOfFamily.isEmpty ? nil : "fib daddr type local \(a) daddr @\(Collection.nodePortAddresses.name)")

        // The destination's dispatch chain number rides in the skb priority from one lookup to
        // the next; a destination that is no service misses the first and is left untouched.
        let dispatch = "meta priority vmap @\(Collection.dispatchChains.name)"
        var services = ["meta priority set \(key) map @\(Collection.serviceIPs.name) \(dispatch)"]
        if let m = nodePortMatch {
            services.append("\(m) meta priority set meta l4proto . th dport map @\(Collection.nodePorts.name) \(dispatch)")
        }

        var masquerade = [
            // External traffic under a Cluster policy was marked by its dispatch chain.
            "meta mark & \(hex(masqueradeBit)) == \(hex(masqueradeBit)) meta mark set meta mark ^ \(hex(masqueradeBit)) masquerade fully-random",
            // A pod that reached itself through a service must see the reply come from the service.
            "ct status dnat \(a) saddr . \(a) daddr @\(Collection.hairpin.name) masquerade fully-random",
        ]
        if settings.masqueradeAll {
            masquerade.append("ct status dnat ct original \(a) daddr @\(Collection.clusterIPs.name) masquerade fully-random")
        } else if !cidrs.isEmpty {
            masquerade.append("ct status dnat ct original \(a) daddr @\(Collection.clusterIPs.name) \(a) saddr != @\(Collection.clusterCIDRs.name) masquerade fully-random")
        }

        var endpointCheck = [
            "ct status dnat return",
            "\(key) @\(Collection.noEndpointServices.name) goto reject-chain",
            "\(key) @\(Collection.noLocalEndpointServices.name) drop",
        ]
        if let m = nodePortMatch {
            endpointCheck.append("\(m) meta l4proto . th dport @\(Collection.noEndpointNodePorts.name) goto reject-chain")
            endpointCheck.append("\(m) meta l4proto . th dport @\(Collection.noLocalEndpointNodePorts.name) drop")
        }
        // Still addressed to a cluster IP after DNAT: a port the service does not have.
        endpointCheck.append("\(a) daddr @\(Collection.clusterIPs.name) goto reject-chain")

        let firewall = [
            "\(key) @\(Collection.firewallIPs.name) \(key) . \(a) saddr != @\(Collection.firewallAllow.name) drop",
        ]
        return [
            // A TCP reset or ICMP port unreachable: clients see "connection refused" at once.
            FixedChain(name: "reject-chain", hook: nil, rules: [
                "meta l4proto tcp reject with tcp reset",
                "reject with \(f.ipFamily == .ipv4 ? "icmp" : "icmpv6") port-unreachable",
            ]),
            FixedChain(name: "services", hook: nil, rules: services),
            FixedChain(name: "masquerading", hook: nil, rules: masquerade),
            FixedChain(name: "endpoint-check", hook: nil, rules: endpointCheck),
            FixedChain(name: "firewall-check", hook: nil, rules: firewall),
            FixedChain(name: "nat-prerouting", hook: "type nat hook prerouting priority -100;", rules: ["jump services"]),
            FixedChain(name: "nat-output", hook: "type nat hook output priority -100;", rules: ["jump services"]),
            FixedChain(name: "nat-postrouting", hook: "type nat hook postrouting priority 100;", rules: ["jump masquerading"]),
            FixedChain(name: "filter-prerouting", hook: "type filter hook prerouting priority -110;", rules: ["ct state new jump firewall-check"]),
            FixedChain(name: "filter-output-pre-dnat", hook: "type filter hook output priority -110;", rules: ["ct state new jump firewall-check"]),
            FixedChain(name: "filter-input", hook: "type filter hook input priority 0;", rules: ["ct state new jump endpoint-check"]),
            FixedChain(name: "filter-forward", hook: "type filter hook forward priority 0;",
                       rules: (dropInvalid ? ["ct state invalid drop"] : []) + ["ct state new jump endpoint-check"]),
            FixedChain(name: "filter-output", hook: "type filter hook output priority 0;", rules: ["ct state new jump endpoint-check"]),
        ]
    }

    /// Elements that come from the settings rather than from services.
    static func settingsElements(_ f: NFTFamily, settings: ProxySettings) -> [NFTElement] {
        var out: [NFTElement] = []
        for c in minimalCover(settings.clusterCIDRs) where c.family == f.ipFamily {
            out.append(NFTElement(family: f.ipFamily, collection: .clusterCIDRs, key: [.cidr(c)]))
        }
        for c in minimalCover(settings.nodePortAddresses) where c.family == f.ipFamily {
            out.append(NFTElement(family: f.ipFamily, collection: .nodePortAddresses, key: [.cidr(c)]))
        }
        return out
    }

    static func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }

    /// A dispatch chain number as nft writes a `classid` (the skb priority's type): `major:minor` in hex.
    static func classid(_ n: UInt32) -> String { String(n >> 16, radix: 16) + ":" + String(n & 0xffff, radix: 16) }
}
