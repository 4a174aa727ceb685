import NetworkTypes
import ServiceTable
import Testing
@testable import NFTablesDataPlane

@Suite("NFTables renderer (pure)")
struct NFTablesRendererTests {
    func elements(_ c: Contribution, _ coll: NFTShape.Collection) -> [String] {
        c.elements.filter { $0.collection == coll }.map(\.text)
    }

    @Test func clusterIPDispatchesThroughSharedChainAndPerIndexMaps() {
        let e = Fixture.service("web", ip: "10.96.0.10", endpoints: [
            Fixture.ep("10.244.1.2"), Fixture.ep("10.244.2.3"), Fixture.ep("10.244.3.4")])
        let c = ElementRenderer.contribution(of: e, family: .ipv4)
        #expect(elements(c, .serviceIPs) == ["10.96.0.10 . tcp . 80 : goto svc-3"])
        #expect(elements(c, .backends(0)) == ["10.96.0.10 . tcp . 80 : 10.244.1.2 . 8080"])
        #expect(elements(c, .backends(2)) == ["10.96.0.10 . tcp . 80 : 10.244.3.4 . 8080"])
        #expect(elements(c, .clusterIPs) == ["10.96.0.10"])
        #expect(c.chains.map(\.name) == ["svc-3"])
        #expect(c.chains[0].picks.map(\.name) == ["pick-0", "pick-1", "pick-2"])
        #expect(elements(c, .hairpin).isEmpty)   // no endpoint on this node
        #expect(ElementRenderer.contribution(of: e, family: .ipv6).elements.isEmpty)
        let rules = c.chains[0].rules(.ipv4)
        #expect(rules == ["numgen random mod 3 vmap { 0 : goto pick-0, 1 : goto pick-1, 2 : goto pick-2 }"])
        #expect(c.chains[0].picks[1].rules(.ipv4) == ["dnat to ip daddr . meta l4proto . th dport map @backends-1"])
    }

    @Test func noEndpointsRejectsAndLocalPolicyWithoutLocalEndpointsDrops() {
        let none = Fixture.service("none", ip: "10.96.0.20", type: .nodePort, nodePort: 30020)
        let c = ElementRenderer.contribution(of: none, family: .ipv4)
        #expect(elements(c, .noEndpointServices) == ["10.96.0.20 . tcp . 80 : goto reject-chain"])
        #expect(elements(c, .noEndpointNodePorts) == ["tcp . 30020 : goto reject-chain"])
        #expect(c.chains.isEmpty && elements(c, .serviceIPs).isEmpty)

        let remote = Fixture.service("remote", ip: "10.96.0.21", endpoints: [Fixture.ep("10.244.2.2")],
                                     type: .nodePort, nodePort: 30021, externalIPs: ["192.168.60.21"],
                                     externalPolicy: .local)
        let r = ElementRenderer.contribution(of: remote, family: .ipv4)
        // Internal traffic still reaches the remote endpoint; external traffic is dropped, except
        // from pods on this node and the node itself, which short-circuit to every endpoint.
        #expect(Set(elements(r, .serviceIPs)) == ["10.96.0.21 . tcp . 80 : goto svc-1",
                                                   "192.168.60.21 . tcp . 80 : goto ext-local-0-cluster-1"])
        #expect(elements(r, .noEndpointNodePorts) == ["tcp . 30021 : drop"])
        #expect(elements(r, .noEndpointServices) == ["192.168.60.21 . tcp . 80 : drop"])
        #expect(elements(r, .clusterBackends(0)) == ["192.168.60.21 . tcp . 80 : 10.244.2.2 . 8080"])
        #expect(elements(r, .nodePortClusterBackends(0)) == ["tcp . 30021 : 10.244.2.2 . 8080"])
        let chain = r.chains.first { $0.role == .nodePortLocal }!
        #expect(chain.rules(.ipv4) == [
            "ip saddr @cluster-cidrs goto np-cluster-pick-0",
            "fib saddr type local meta mark set meta mark | 0x4000 goto np-cluster-pick-0",
        ])
    }

    @Test func externalPolicyPicksChainRoleAndEndpoints() {
        let localA = Fixture.ep("10.244.1.2", local: true)
        let e = Fixture.service("np", ip: "10.96.0.31", endpoints: [localA, Fixture.ep("10.244.2.2")],
                                type: .loadBalancer, nodePort: 30031, lbIPs: ["192.168.60.31"], externalPolicy: .local)
        let c = ElementRenderer.contribution(of: e, family: .ipv4)
        #expect(Set(elements(c, .serviceIPs)) == ["10.96.0.31 . tcp . 80 : goto svc-2",
                                                   "192.168.60.31 . tcp . 80 : goto ext-local-1-cluster-2"])
        #expect(elements(c, .nodePorts) == ["tcp . 30031 : goto np-local-1-cluster-2"])
        #expect(elements(c, .nodePortBackends(0)) == ["tcp . 30031 : 10.244.1.2 . 8080"])
        #expect(elements(c, .hairpin) == ["10.244.1.2 . 10.244.1.2"])

        let cluster = Fixture.service("npc", ip: "10.96.0.32", endpoints: [localA], type: .nodePort, nodePort: 30032)
        let cc = ElementRenderer.contribution(of: cluster, family: .ipv4)
        let np = cc.chains.first { $0.role == .nodePort }!
        #expect(np.rules(.ipv4).first == "meta mark set meta mark | 0x4000")
    }

    @Test func sessionAffinityUsesStableSlots() {
        let a = Fixture.ep("10.244.1.2"), b = Fixture.ep("10.244.2.2"), c = Fixture.ep("10.244.3.2")
        let e = Fixture.service("sticky", ip: "10.96.0.50", endpoints: [a, b, c], type: .nodePort, nodePort: 30050, affinity: 600)
        let r = ElementRenderer.contribution(of: e, family: .ipv4)
        #expect(elements(r, .serviceIPs) == ["10.96.0.50 . tcp . 80 : goto svc-3-affinity-600"])
        #expect(r.chains.allSatisfy { $0.picks.isEmpty })
        // position → slot, and slot → endpoint, for the cluster IP and (with the masquerade bit) the node port.
        let slots = elements(r, .affinitySlots)
        let backends = elements(r, .backendsAffinity)
        #expect(slots.count == 3 && backends.count == 3)
        #expect(slots[0].hasPrefix("10.96.0.50 . tcp . 80 . 0 : "))
        let slotOfA = UInt32(slots[0].split(separator: " ").last!)!
        #expect(slotOfA & NFTShape.masqueradeBit == 0)
        #expect(backends[0] == "10.96.0.50 . tcp . 80 . \(slotOfA) : 10.244.1.2 . 8080")
        let npSlots = elements(r, .nodePortAffinitySlots).map { UInt32($0.split(separator: " ").last!)! }
        #expect(npSlots.allSatisfy { $0 & NFTShape.masqueradeBit != 0 })

        // b goes away: a and c keep their slots, so their clients stay with them.
        var e2 = e
        e2.endpoints = [a, c]; e2.clusterEndpoints = [a, c]
        let r2 = ElementRenderer.contribution(of: e2, family: .ipv4)
        let kept = Set(elements(r2, .backendsAffinity))
        #expect(kept.isSubset(of: Set(backends)) && kept.count == 2)
        let rules = r.chains.first { $0.role == .clusterIP }!.rules(.ipv4)
        #expect(rules.count == 3 && rules[0].contains("timeout 600s") && rules[2].contains("@affinity-slots"))
    }

    @Test func dualStackAndSourceRanges() {
        let e = Fixture.service("lb", ip: "10.96.0.60", "fd00:96::60", endpoints: [Fixture.ep("10.244.1.2"), Fixture.ep("fd00:244::2")],
                                type: .loadBalancer, nodePort: 30060, lbIPs: ["192.168.60.60", "fd00:60::60"],
                                sourceRanges: ["192.168.50.0/24", "fd00:50::/64"])
        let v4 = ElementRenderer.contribution(of: e, family: .ipv4)
        let v6 = ElementRenderer.contribution(of: e, family: .ipv6)
        #expect(elements(v4, .firewallAllow) == ["192.168.60.60 . tcp . 80 . 192.168.50.0/24"])
        #expect(elements(v6, .firewallAllow) == ["fd00:60::60 . tcp . 80 . fd00:50::/64"])
        #expect(elements(v6, .backends(0)).contains("fd00:96::60 . tcp . 80 : fd00:244::2 . 8080"))
        #expect(v4.elements.allSatisfy { $0.family == .ipv4 } && v6.elements.allSatisfy { $0.family == .ipv6 })

        // Ranges of one family only: the other family's load-balancer IP is unrestricted (kube-proxy).
        var v4only = e
        v4only.loadBalancerSourceRanges = [CIDR("192.168.50.0/24")!]
        #expect(elements(ElementRenderer.contribution(of: v4only, family: .ipv6), .firewallIPs).isEmpty)
        #expect(elements(ElementRenderer.contribution(of: v4only, family: .ipv4), .firewallIPs) == ["192.168.60.60 . tcp . 80"])
    }

    @Test func chainCountDoesNotGrowWithServices() {
        let small = NFTRuleset.render(Fixture.synthetic(count: 10, endpoints: 2), settings: ProxySettings(), families: [.ipv4])
        let big = NFTRuleset.render(Fixture.synthetic(count: 2_000, endpoints: 2), settings: ProxySettings(), families: [.ipv4])
        func chains(_ s: String) -> Int { s.split(separator: "\n").filter { $0.hasPrefix("add chain") }.count }
        #expect(chains(small) == chains(big))
        // 2,000 services × (service-ips + cluster-ips + 2 backends) elements, in chunks of 2,000.
        let elementText = big.split(separator: "\n").filter { $0.hasPrefix("add element") }.joined()
        #expect(elementText.components(separatedBy: " : goto svc-2").count - 1 == 2_000)
    }

    @Test func incrementalDeltaIsTheChangedElementsOnly() {
        let t1 = Fixture.synthetic(count: 100, endpoints: 3, version: 1)
        var state = RulesetState(table: t1, families: [.ipv4])
        let name = ServicePortName(namespace: "bench", name: "svc-7", port: "", protocol: .tcp)
        var e = t1[name]!
        e.clusterEndpoints[1].ip = IPAddress("10.200.0.1")!
        e.endpoints = e.clusterEndpoints
        var entries = t1.entries
        entries[name] = e
        let t2 = ServiceTable(version: 2, node: t1.node, entries: entries)
        let delta = state.update(names: [name], previous: t1, current: t2, families: [.ipv4])
        #expect(delta.elements.removed.map(\.text) == ["10.96.0.8 . tcp . 80 : 10.128.0.22 . 8080"])
        #expect(delta.elements.added.map(\.text) == ["10.96.0.8 . tcp . 80 : 10.200.0.1 . 8080"])
        #expect(delta.chains.isEmpty && delta.picks.isEmpty)
        let text = NFTRuleset.incremental(delta)
        #expect(text == """
            delete element ip kproxy backends-1 { 10.96.0.8 . tcp . 80 }
            add element ip kproxy backends-1 { 10.96.0.8 . tcp . 80 : 10.200.0.1 . 8080 }

            """)
    }

    @Test func sharedElementsStayWhileAnyServicePortNeedsThem() {
        // Two ports of one dual-stack service share its cluster IPs; two services share a local pod (hairpin).
        let pod = Fixture.ep("10.244.1.2", local: true)
        let http = Fixture.service("web", ip: "10.96.0.10", "fd00:96::10", portName: "http", endpoints: [pod])
        let https = Fixture.service("web", ip: "10.96.0.10", "fd00:96::10", port: 443, portName: "https", endpoints: [pod])
        let other = Fixture.service("other", ip: "10.96.0.11", endpoints: [pod])
        let families: [IPFamily] = [.ipv4, .ipv6]
        let t1 = Fixture.table([http, https, other], version: 1)
        var state = RulesetState(table: t1, families: families)
        func step(_ from: ServiceTable, _ to: ServiceTable, _ names: Set<ServicePortName>) -> (added: Set<String>, removed: Set<String>) {
            let d = state.update(names: names, previous: from, current: to, families: families)
            func shared(_ s: Set<NFTElement>) -> Set<String> {
                Set(s.filter { $0.collection == .clusterIPs || $0.collection == .hairpin }.map(\.text))
            }
            return (shared(d.elements.added), shared(d.elements.removed))
        }
        // One port of web goes: its cluster IPs and the pod's hairpin pair stay.
        let t2 = Fixture.table([http, other], version: 2)
        #expect(step(t1, t2, [https.name]) == ([], []))
        // The other port goes: both cluster IPs go; the hairpin pair stays for `other`.
        let t3 = Fixture.table([other], version: 3)
        #expect(step(t2, t3, [http.name]) == ([], ["10.96.0.10", "fd00:96::10"]))
        // `other` goes too: its cluster IP and the hairpin pair go.
        let t4 = Fixture.table([], version: 4)
        #expect(step(t3, t4, [other.name]) == ([], ["10.96.0.11", "10.244.1.2 . 10.244.1.2"]))
        // And back in one step: added once, however many ports need them.
        #expect(step(t4, t1, [http.name, https.name, other.name])
                == (["10.96.0.10", "fd00:96::10", "10.96.0.11", "10.244.1.2 . 10.244.1.2"], []))
    }

    @Test func settingsShapeTheFixedChains() {
        let text = NFTRuleset.render(Fixture.table([]), settings: ProxySettings(
            clusterCIDRs: [CIDR("10.244.0.0/16")!], nodePortAddresses: [CIDR("192.168.50.0/24")!]), families: [.ipv4])
        #expect(text.contains("add rule ip kproxy masquerading ct status dnat ct original ip daddr @cluster-ips ip saddr != @cluster-cidrs masquerade fully-random"))
        #expect(text.contains("add rule ip kproxy services fib daddr type local ip daddr @nodeport-addresses meta l4proto . th dport vmap @service-nodeports"))
        #expect(text.contains("add element ip kproxy nodeport-addresses { 192.168.50.0/24 }"))
        // No IPv6 node-port range given: IPv6 node ports answer nowhere.
        let v6 = NFTRuleset.render(Fixture.table([]), settings: ProxySettings(
            nodePortAddresses: [CIDR("192.168.50.0/24")!]), families: [.ipv6])
        #expect(!v6.contains("vmap @service-nodeports"))

        let all = NFTRuleset.render(Fixture.table([]), settings: ProxySettings(masqueradeAll: true), families: [.ipv4])
        #expect(all.contains("ct status dnat ct original ip daddr @cluster-ips masquerade fully-random"))
        let none = NFTRuleset.render(Fixture.table([]), settings: ProxySettings(), families: [.ipv4])
        #expect(none.contains("add rule ip kproxy filter-forward ct state invalid drop"))
        #expect(!none.contains("@cluster-cidrs masquerade"))
        #expect(none.contains("fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"))
    }

    @Test func sourceRangesHoldingTheNodeAllowTheLoadBalancerIPItself() {
        let e = Fixture.service("lb", ip: "10.96.0.60", endpoints: [Fixture.ep("10.244.1.2")], type: .loadBalancer,
                                nodePort: 30060, lbIPs: ["192.168.60.60"], sourceRanges: ["192.168.50.0/24"])
        let withNode = ElementRenderer.contribution(of: e, family: .ipv4, nodeAddresses: [IPAddress("192.168.50.1")!])
        #expect(Set(elements(withNode, .firewallAllow)) == ["192.168.60.60 . tcp . 80 . 192.168.50.0/24",
                                                            "192.168.60.60 . tcp . 80 . 192.168.60.60/32"])
        let elsewhere = ElementRenderer.contribution(of: e, family: .ipv4, nodeAddresses: [IPAddress("10.0.0.1")!])
        #expect(elements(elsewhere, .firewallAllow) == ["192.168.60.60 . tcp . 80 . 192.168.50.0/24"])
    }

    @Test func overlappingRangesAreReducedForIntervalSets() {
        let cidrs = ["10.1.0.0/16", "10.0.0.0/8", "10.0.0.0/8", "192.168.0.0/24", "fd00::/8", "fd00:1::/64"].map { CIDR($0)! }
        #expect(minimalCover(cidrs).map(\.description) == ["10.0.0.0/8", "192.168.0.0/24", "fd00::/8"])
    }

    @Test func chainListingParser() {
        let listing = """
            table ip other {
            \tchain svc-9 {
            \t}
            }
            table ip kproxy {
            \tchain nat-prerouting {
            \t\ttype nat hook prerouting priority dstnat; policy accept;
            \t}
            \tchain pick-0 {
            \t}
            }
            """
        #expect(NFTablesDataPlane.chainNames(in: listing, table: "kproxy") == ["nat-prerouting", "pick-0"])
    }
}
