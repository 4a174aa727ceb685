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
        #expect(elements(c, .serviceIPs) == ["10.96.0.10 . tcp . 80 : <svc-3>"])
        #expect(elements(c, .backends(0)) == ["10.96.0.10 . tcp . 80 : 10.244.1.2 . 8080"])
        #expect(elements(c, .backends(2)) == ["10.96.0.10 . tcp . 80 : 10.244.3.4 . 8080"])
        #expect(elements(c, .clusterIPs) == ["10.96.0.10"])
        #expect(c.chains.map(\.name) == ["svc-3"])
        #expect(c.chains[0].picks.map(\.name) == ["pick-0", "pick-1", "pick-2"])
        #expect(elements(c, .hairpin).isEmpty)   // no endpoint on this node
        #expect(ElementRenderer.contribution(of: e, family: .ipv6).elements.isEmpty)
        let rules = c.chains[0].rules(.ipv4)
        #expect(rules == ["meta priority set none",
                          "numgen random mod 3 vmap { 0 : goto pick-0, 1 : goto pick-1, 2 : goto pick-2 }"])
        #expect(c.chains[0].picks[1].rules(.ipv4) == ["dnat to ip daddr . meta l4proto . th dport map @backends-1"])
    }

    @Test func noEndpointsRejectsAndLocalPolicyWithoutLocalEndpointsDrops() {
        let none = Fixture.service("none", ip: "10.96.0.20", type: .nodePort, nodePort: 30020)
        let c = ElementRenderer.contribution(of: none, family: .ipv4)
        #expect(elements(c, .noEndpointServices) == ["10.96.0.20 . tcp . 80"])
        #expect(elements(c, .noEndpointNodePorts) == ["tcp . 30020"])
        #expect(elements(c, .noLocalEndpointServices).isEmpty && elements(c, .noLocalEndpointNodePorts).isEmpty)
        #expect(c.chains.isEmpty && elements(c, .serviceIPs).isEmpty)

        let remote = Fixture.service("remote", ip: "10.96.0.21", endpoints: [Fixture.ep("10.244.2.2")],
                                     type: .nodePort, nodePort: 30021, externalIPs: ["192.168.60.21"],
                                     externalPolicy: .local)
        let r = ElementRenderer.contribution(of: remote, family: .ipv4)
        // Internal traffic still reaches the remote endpoint; external traffic is dropped, except
        // from pods on this node and the node itself, which short-circuit to every endpoint.
        #expect(Set(elements(r, .serviceIPs)) == ["10.96.0.21 . tcp . 80 : <svc-1>",
                                                   "192.168.60.21 . tcp . 80 : <ext-local-0-cluster-1>"])
        #expect(elements(r, .noLocalEndpointNodePorts) == ["tcp . 30021"])
        #expect(elements(r, .noLocalEndpointServices) == ["192.168.60.21 . tcp . 80"])
        #expect(elements(r, .noEndpointServices).isEmpty && elements(r, .noEndpointNodePorts).isEmpty)
        #expect(elements(r, .clusterBackends(0)) == ["192.168.60.21 . tcp . 80 : 10.244.2.2 . 8080"])
        #expect(elements(r, .nodePortClusterBackends(0)) == ["tcp . 30021 : 10.244.2.2 . 8080"])
        let chain = r.chains.first { $0.role == .nodePortLocal }!
        #expect(chain.rules(.ipv4) == [
            "meta priority set none",
            "ip saddr @cluster-cidrs goto np-cluster-pick-0",
            "fib saddr type local meta mark set meta mark | 0x4000 goto np-cluster-pick-0",
        ])
    }

    @Test func externalPolicyPicksChainRoleAndEndpoints() {
        let localA = Fixture.ep("10.244.1.2", local: true)
        let e = Fixture.service("np", ip: "10.96.0.31", endpoints: [localA, Fixture.ep("10.244.2.2")],
                                type: .loadBalancer, nodePort: 30031, lbIPs: ["192.168.60.31"], externalPolicy: .local)
        let c = ElementRenderer.contribution(of: e, family: .ipv4)
        #expect(Set(elements(c, .serviceIPs)) == ["10.96.0.31 . tcp . 80 : <svc-2>",
                                                   "192.168.60.31 . tcp . 80 : <ext-local-1-cluster-2>"])
        #expect(elements(c, .nodePorts) == ["tcp . 30031 : <np-local-1-cluster-2>"])
        #expect(elements(c, .nodePortBackends(0)) == ["tcp . 30031 : 10.244.1.2 . 8080"])
        #expect(elements(c, .hairpin) == ["10.244.1.2 . 10.244.1.2"])

        let cluster = Fixture.service("npc", ip: "10.96.0.32", endpoints: [localA], type: .nodePort, nodePort: 30032)
        let cc = ElementRenderer.contribution(of: cluster, family: .ipv4)
        let np = cc.chains.first { $0.role == .nodePort }!
        #expect(np.rules(.ipv4).dropFirst().first == "meta mark set meta mark | 0x4000")
    }

    @Test func sessionAffinityUsesStableSlots() {
        let a = Fixture.ep("10.244.1.2"), b = Fixture.ep("10.244.2.2"), c = Fixture.ep("10.244.3.2")
        let e = Fixture.service("sticky", ip: "10.96.0.50", endpoints: [a, b, c], type: .nodePort, nodePort: 30050, affinity: 600)
        let r = ElementRenderer.contribution(of: e, family: .ipv4)
        #expect(elements(r, .serviceIPs) == ["10.96.0.50 . tcp . 80 : <svc-3-affinity-600>"])
        #expect(r.chains.allSatisfy { $0.picks.isEmpty })
        // position → slot, and slot → endpoint, for the cluster IP and (with the masquerade bit) the node port.
        let slots = elements(r, .affinitySlots)
        let backends = elements(r, .backendsAffinity)
        #expect(slots.count == 3 && backends.count == 3)
        #expect(slots[0].hasPrefix("10.96.0.50 . tcp . 80 . 0:0 : "))
        // Slots are skb priorities: `0:minor`, below 0x10000 (never a qdisc class's own number).
        let slotOfA = String(slots[0].split(separator: " ").last!)
        #expect(slotOfA.hasPrefix("0:"))
        #expect(backends[0] == "10.96.0.50 . tcp . 80 . \(slotOfA) : 10.244.1.2 . 8080")
        // The node port's destination has the same endpoints, so the same slots; its chain marks
        // the packet for masquerading in a rule of its own.
        let npSlots = elements(r, .nodePortAffinitySlots).map { $0.split(separator: " ").last! }
        #expect(npSlots == slots.map { $0.split(separator: " ").last! })
        let npRules = r.chains.first { $0.role == .nodePort }!.rules(.ipv4)
        #expect(npRules.prefix(2) == ["meta priority set none", "meta mark set meta mark | 0x4000"])
        #expect(!npRules.dropFirst(2).contains { $0.contains("meta mark") })

        // b goes away: a and c keep their slots, so their clients stay with them.
        var e2 = e
        e2.endpoints = [a, c]; e2.clusterEndpoints = [a, c]
        let r2 = ElementRenderer.contribution(of: e2, family: .ipv4)
        let kept = Set(elements(r2, .backendsAffinity))
        #expect(kept.isSubset(of: Set(backends)) && kept.count == 2)
        let rules = r.chains.first { $0.role == .clusterIP }!.rules(.ipv4)
        #expect(rules.count == 4 && rules[1].contains("timeout 600s : meta priority") && rules[3].contains("@affinity-slots"))
        #expect(!rules.contains { $0.contains("meta mark") })
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
        #expect(elementText.components(separatedBy: " : 0:1").count - 1 == 2_000)
        #expect(big.contains("add element ip kproxy dispatch-chains { 0:1 : goto svc-2 }"))
    }

    @Test func scalingAServiceChangesDataElementsOnly() {
        // The kernel validates the whole table when a transaction adds a goto: scaling one service
        // must not add one per service, only (when its endpoint count is new) one for the new chain.
        let t1 = Fixture.synthetic(count: 100, endpoints: 3, version: 1)
        var state = RulesetState(table: t1, families: [.ipv4])
        let svc3 = DispatchChain(family: .ipv4, role: .clusterIP, endpointCount: 3)
        #expect(state.dispatchNumbers == [svc3: 1])
        let name = ServicePortName(namespace: "bench", name: "svc-7", port: "", protocol: .tcp)
        func scaled(_ table: ServiceTable, _ name: ServicePortName, to count: Int, version: UInt64) -> ServiceTable {
            var e = table[name]!
            e.clusterEndpoints = (0..<count).map { Fixture.ep("10.201.\(version).\($0 + 1)") }
            e.endpoints = e.clusterEndpoints
            var entries = table.entries
            entries[name] = e
            return ServiceTable(version: version, node: table.node, entries: entries)
        }
        let t2 = scaled(t1, name, to: 4, version: 2)
        let up = state.update(names: [name], previous: t1, current: t2, families: [.ipv4])
        let svc4 = DispatchChain(family: .ipv4, role: .clusterIP, endpointCount: 4)
        #expect(up.chains.added == [svc4] && up.picks.added.map(\.name) == ["pick-3"])
        #expect(state.dispatchNumbers == [svc3: 1, svc4: 2])
        let gotos = up.elements.added.filter { if case .goto = $0.value { return true } else { return false } }
        #expect(gotos.map(\.text) == ["0:2 : goto svc-4"])
        #expect(up.elements.added.contains { $0.text == "10.96.0.8 . tcp . 80 : 0:2" })
        // Back to 3: svc-4 goes with its number; a new 4-endpoint chain later gets a number never used.
        let t3 = scaled(t2, name, to: 3, version: 3)
        let down = state.update(names: [name], previous: t2, current: t3, families: [.ipv4])
        #expect(down.chains.removed == [svc4] && down.elements.added.map(\.text).contains("10.96.0.8 . tcp . 80 : 0:1"))
        #expect(down.elements.removed.contains { $0.collection == .dispatchChains && $0.keyText == "0:2" })
        #expect(!down.elements.added.contains { $0.collection == .dispatchChains })
        let t4 = scaled(t3, name, to: 4, version: 4)
        let again = state.update(names: [name], previous: t3, current: t4, families: [.ipv4])
        #expect(again.elements.added.filter { $0.collection == .dispatchChains }.map(\.text) == ["0:3 : goto svc-4"])
        // Between two chains that stay in use: data elements only.
        let other = ServicePortName(namespace: "bench", name: "svc-9", port: "", protocol: .tcp)
        let t5 = scaled(t4, other, to: 4, version: 5)
        var settled = RulesetState(table: t5, families: [.ipv4])
        let t6 = scaled(t5, name, to: 3, version: 6)
        let plain = settled.update(names: [name], previous: t5, current: t6, families: [.ipv4])
        #expect(plain.chains.isEmpty && plain.picks.isEmpty)
        #expect(plain.elements.added.allSatisfy { $0.collection != .dispatchChains && $0.value.map { if case .goto = $0 { false } else { true } } ?? true })
        #expect(plain.elements.added.contains { $0.text == "10.96.0.8 . tcp . 80 : 0:1" })
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
        #expect(text.contains("add rule ip kproxy services fib daddr type local ip daddr @nodeport-addresses meta priority set meta l4proto . th dport map @service-nodeports meta priority vmap @dispatch-chains"))
        #expect(text.contains("add element ip kproxy nodeport-addresses { 192.168.50.0/24 }"))
        // No IPv6 node-port range given: IPv6 node ports answer nowhere.
        let v6 = NFTRuleset.render(Fixture.table([]), settings: ProxySettings(
            nodePortAddresses: [CIDR("192.168.50.0/24")!]), families: [.ipv6])
        #expect(!v6.contains("map @service-nodeports meta"))

        let all = NFTRuleset.render(Fixture.table([]), settings: ProxySettings(masqueradeAll: true), families: [.ipv4])
        #expect(all.contains("ct status dnat ct original ip daddr @cluster-ips masquerade fully-random"))
        let none = NFTRuleset.render(Fixture.table([]), settings: ProxySettings(), families: [.ipv4])
        #expect(none.contains("add rule ip kproxy filter-forward ct state invalid drop"))
        #expect(!none.contains("@cluster-cidrs masquerade"))
        #expect(none.contains("fib daddr type local ip daddr != 127.0.0.0/8 meta priority set meta l4proto . th dport map @service-nodeports"))
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
