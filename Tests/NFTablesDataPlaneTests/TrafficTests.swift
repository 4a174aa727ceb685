import Foundation
import NetworkTypes
import ServiceTable
import Testing
@testable import NFTablesDataPlane

/// Real traffic through the ruleset: a client and two pods around a node namespace.
@Suite("NFTables traffic (scratch namespaces)", .serialized,
       .enabled(if: canUseNetns, netnsSkipReason))
struct NFTablesTrafficTests {
    // Both pods run on the node under test.
    let a4 = Fixture.ep("10.244.1.2", local: true), b4 = Fixture.ep("10.244.2.2", local: true)
    let a6 = Fixture.ep("fd00:244:1::2", local: true), b6 = Fixture.ep("fd00:244:2::2", local: true)

    @Test func clusterIPSpreadsMasqueradesAndRejects() async throws {
        let lab = TrafficLab()
        defer { lab.tearDown() }
        try lab.setUp()
        let plane = try NFTablesDataPlane(settings: ProxySettings(clusterCIDRs: TrafficLab.clusterCIDRs),
                                          netnsPath: lab.nodePath)
        let table = Fixture.table([
            Fixture.service("web", ip: "10.96.0.10", "fd00:96::10", port: 80, endpoints: [a4, b4, a6, b6]),
            Fixture.service("empty", ip: "10.96.0.20"),
        ])
        try await plane.apply(TableUpdate(previous: nil, current: table, diff: nil))

        let spread = lab.spread("10.96.0.10", 80)
        #expect(spread["pod-a", default: 0] > 0 && spread["pod-b", default: 0] > 0, "spread: \(spread)")
        #expect(spread["error"] == nil, "spread: \(spread)")
        // From outside the cluster CIDR: masqueraded to the node's address towards the pod.
        let answer = lab.tcp("10.96.0.10", 80)
        #expect(answer.hasSuffix("10.244.1.1") || answer.hasSuffix("10.244.2.1"), "answer: \(answer)")

        let spread6 = lab.spread("fd00:96::10", 80, count: 12)
        #expect(spread6["pod-a", default: 0] > 0 && spread6["pod-b", default: 0] > 0, "IPv6 spread: \(spread6)")

        // Hairpin: pod-a reaching itself through the service works (masqueraded).
        let hairpin = lab.spread("10.96.0.10", 80, count: 12, from: lab.pods["pod-a"])
        #expect(hairpin["error"] == nil, "hairpin: \(hairpin)")
        // From a pod (inside the cluster CIDR) to the other pod: source kept.
        for _ in 0..<8 {
            let a = lab.tcp("10.96.0.10", 80, from: lab.pods["pod-a"])
            if a.hasPrefix("pod-b") { #expect(a.hasSuffix("10.244.1.2"), "answer: \(a)") }
        }

        // No endpoints, and an unknown port on a known cluster IP: refused (a reset), not timed out
        // (a dropped SYN would make socat report "Connection timed out" instead).
        let refused = lab.tcp("10.96.0.20", 80)
        #expect(refused.contains("refused"), "no endpoints: \(refused)")
        let unknownPort = lab.tcp("10.96.0.10", 81)
        #expect(unknownPort.contains("refused"), "unknown port: \(unknownPort)")
    }
}

extension NFTablesTrafficTests {
    @Test func nodePortsExternalIPsPoliciesAndSourceRanges() async throws {
        let lab = TrafficLab()
        defer { lab.tearDown() }
        try lab.setUp()
        let plane = try NFTablesDataPlane(settings: ProxySettings(clusterCIDRs: TrafficLab.clusterCIDRs),
                                          netnsPath: lab.nodePath)
        let localA = Fixture.ep("10.244.1.2", local: true)
        // For the Local-policy services, pod-b counts as running on another node.
        let remoteB = Fixture.ep("10.244.2.2")
        let table = Fixture.table([
            Fixture.service("np-cluster", ip: "10.96.0.30", endpoints: [a4], type: .nodePort, nodePort: 30080),
            Fixture.service("np-local", ip: "10.96.0.31", endpoints: [localA, remoteB], type: .nodePort, nodePort: 30081,
                            externalIPs: ["192.168.60.31"], externalPolicy: .local),
            Fixture.service("np-local-none", ip: "10.96.0.32", endpoints: [remoteB], type: .nodePort, nodePort: 30082,
                            externalPolicy: .local),
            Fixture.service("np-empty", ip: "10.96.0.33", type: .nodePort, nodePort: 30083),
            Fixture.service("lb-open", ip: "10.96.0.40", endpoints: [a4], type: .loadBalancer, nodePort: 30090,
                            lbIPs: ["192.168.60.40"], sourceRanges: ["192.168.50.0/24"]),
            Fixture.service("lb-closed", ip: "10.96.0.41", endpoints: [a4], type: .loadBalancer, nodePort: 30091,
                            lbIPs: ["192.168.60.41"], sourceRanges: ["10.0.0.0/8"]),
        ])
        try await plane.apply(TableUpdate(previous: nil, current: table, diff: nil))

        // NodePort, Cluster policy: reaches the pod, masqueraded.
        let cluster = lab.tcp("192.168.50.1", 30080)
        #expect(cluster == "pod-a 10.244.1.1", "np-cluster: \(cluster)")
        // NodePort and external IP, Local policy: only the local endpoint, client address kept.
        for _ in 0..<6 {
            let local = lab.tcp("192.168.50.1", 30081)
            #expect(local == "pod-a 192.168.50.2", "np-local: \(local)")
        }
        let ext = lab.tcp("192.168.60.31", 80)
        #expect(ext == "pod-a 192.168.50.2", "external IP, Local: \(ext)")
        // The cluster IP of the Local-policy service still uses every endpoint.
        let inside = lab.spread("10.96.0.31", 80, count: 12)
        #expect(inside["pod-a", default: 0] > 0 && inside["pod-b", default: 0] > 0, "cluster IP: \(inside)")
        // Local policy with endpoints only elsewhere: external traffic is dropped (times out).
        let none = lab.tcp("192.168.50.1", 30082, timeout: 1)
        #expect(none.contains("timed out") || none.isEmpty || none.contains("Connection timed out"), "np-local-none: \(none)")
        // Pods on this node and the node itself short-circuit to every endpoint (kube-proxy does).
        let fromPod = lab.tcp("192.168.50.1", 30082, from: lab.pods["pod-a"])
        #expect(fromPod == "pod-b 10.244.1.2", "np-local-none from a local pod: \(fromPod)")
        let fromNode = lab.tcp("192.168.50.1", 30082, from: lab.node)
        #expect(fromNode.hasPrefix("pod-b"), "np-local-none from the node: \(fromNode)")
        // A node port without endpoints is refused.
        let empty = lab.tcp("192.168.50.1", 30083)
        #expect(empty.contains("refused"), "np-empty: \(empty)")
        // Load-balancer IPs honour loadBalancerSourceRanges.
        let open = lab.tcp("192.168.60.40", 80)
        #expect(open == "pod-a 10.244.1.1", "lb-open: \(open)")
        let closed = lab.tcp("192.168.60.41", 80, timeout: 1)
        #expect(!closed.hasPrefix("pod-"), "lb-closed: \(closed)")
        // The node port of the restricted service is not an LB IP: source ranges do not apply there.
        let closedNodePort = lab.tcp("192.168.50.1", 30091)
        #expect(closedNodePort.hasPrefix("pod-a"), "lb-closed node port: \(closedNodePort)")
    }

    @Test func affinityIncrementalUpdatesAndUDPConntrack() async throws {
        let lab = TrafficLab()
        defer { lab.tearDown() }
        try lab.setUp()
        let plane = try NFTablesDataPlane(settings: ProxySettings(clusterCIDRs: TrafficLab.clusterCIDRs),
                                          netnsPath: lab.nodePath)
        let sticky = Fixture.service("sticky", ip: "10.96.0.50", endpoints: [a4, b4], affinity: 600)
        let web = Fixture.service("web", ip: "10.96.0.10", endpoints: [a4, b4])
        let dns = Fixture.service("dns", ip: "10.96.0.53", port: 53, proto: .udp,
                                  endpoints: [Fixture.ep("10.244.1.2", 5353)])
        let t1 = Fixture.table([sticky, web, dns], version: 1)
        try await plane.apply(TableUpdate(previous: nil, current: t1, diff: nil))

        // Session affinity: every connection of this client lands on the same pod.
        let stuck = lab.spread("10.96.0.50", 80, count: 10)
        #expect(stuck.count == 1 && stuck["error"] == nil, "affinity: \(stuck)")

        // UDP: the client's flow goes to pod-a.
        let before = lab.udp("10.96.0.53", 53, sourcePort: 40053)
        #expect(before.hasPrefix("pod-a"), "udp before: \(before)\n\(before.isEmpty ? lab.udpState() : "")")

        // Incremental: web loses pod-b, dns moves to pod-b.
        var web2 = web
        web2.endpoints = [a4]; web2.clusterEndpoints = [a4]
        var dns2 = dns
        dns2.endpoints = [Fixture.ep("10.244.2.2", 5353)]; dns2.clusterEndpoints = dns2.endpoints
        let t2 = Fixture.table([sticky, web2, dns2], version: 2)
        try await plane.apply(TableUpdate(previous: t1, current: t2, diff: TableDiff(changed: [web.name, dns.name])))
        let stats = await plane.lastSyncStats
        #expect(stats.kind == .incremental)
        #expect(stats.conntrackFilters > 0)
        #expect(stats.conntrackDeleted >= 1, "stats: \(stats)")
        #expect(stats.conntrackError == nil)

        let after = lab.spread("10.96.0.10", 80, count: 10)
        #expect(after == ["pod-a": 10], "removed endpoint still used: \(after)")
        // Same UDP source port: the stale conntrack entry was deleted, so the flow moves.
        let moved = lab.udp("10.96.0.53", 53, sourcePort: 40053)
        #expect(moved.hasPrefix("pod-b"), "udp after: \(moved)\n\(moved.isEmpty ? lab.udpState() : "")")

        // Affinity memory survives a full resync.
        let pod = stuck.keys.first ?? ""
        try await plane.apply(TableUpdate(previous: t2, current: t2, diff: nil))
        let still = lab.spread("10.96.0.50", 80, count: 6)
        #expect(still == [pod: 6], "affinity after resync: \(still)")

        // The endpoint the client sticks to goes away: its next connections go to the other one.
        let other = pod == "pod-a" ? b4 : a4
        var sticky2 = sticky
        sticky2.endpoints = [other]; sticky2.clusterEndpoints = [other]
        let t3 = Fixture.table([sticky2, web2, dns2], version: 3)
        try await plane.apply(TableUpdate(previous: t2, current: t3, diff: TableDiff(changed: [sticky.name])))
        let moved2 = lab.spread("10.96.0.50", 80, count: 6)
        #expect(moved2 == [(pod == "pod-a" ? "pod-b" : "pod-a"): 6], "after its endpoint left: \(moved2)")
    }
}

extension NFTablesTrafficTests {
    @Test func trafficFlowsThroughResyncsAndARestart() async throws {
        let lab = TrafficLab()
        defer { lab.tearDown() }
        try lab.setUp()
        let settings = ProxySettings(clusterCIDRs: TrafficLab.clusterCIDRs)
        var plane = try NFTablesDataPlane(settings: settings, netnsPath: lab.nodePath)
        let entries = [Fixture.service("web", ip: "10.96.100.10", "fd00:96::10", endpoints: [a4, b4, a6, b6],
                                       type: .nodePort, nodePort: 30080)]
            + NFTBenchmark.syntheticEntries(count: 2_000, endpoints: 3)
        let table = Fixture.table(entries)   // synthetic services use 10.96.0.1 – 10.96.7.208
        try await plane.apply(TableUpdate(previous: nil, current: table, diff: nil))

        // A client connects in a loop while the node resyncs and kproxy "restarts". A connect that
        // needs a SYN retransmit (1 s) counts as lost; the answer may take longer on a busy machine.
        let client = Task.detached {
            lab.ns.exec(lab.client, """
                ok=0; fail=0; for i in $(seq 150); do \
                  if socat -t6 -T6 - TCP:10.96.100.10:80,connect-timeout=1 </dev/null 2>/dev/null | grep -q pod; then ok=$((ok+1)); else fail=$((fail+1)); fi; \
                done; echo "$ok $fail"
                """).output
        }
        for i in 0..<6 {
            try await plane.apply(TableUpdate(previous: table, current: table, diff: nil))
            if i == 3 {
                plane = try NFTablesDataPlane(settings: settings, netnsPath: lab.nodePath)
                try await plane.apply(TableUpdate(previous: nil, current: table, diff: nil))
                let s = await plane.lastSyncStats
                #expect(s.replacedBecause == nil)
            }
        }
        let counts = await client.value.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(counts.count == 2 && counts[1] == 0, "ok/fail: \(counts)")

        // IPv6 node port, Cluster policy.
        let v6 = lab.tcp("fd00:50::1", 30080)
        #expect(v6.hasPrefix("pod-"), "IPv6 node port: \(v6)")
    }
}

extension NFTablesTrafficTests {
    @Test func nodePortAddressesAndMasqueradeAll() async throws {
        let lab = TrafficLab()
        defer { lab.tearDown() }
        try lab.setUp()
        let settings = ProxySettings(clusterCIDRs: TrafficLab.clusterCIDRs, masqueradeAll: true,
                                     nodePortAddresses: [CIDR("192.168.50.0/24")!])
        let plane = try NFTablesDataPlane(settings: settings, netnsPath: lab.nodePath)
        let table = Fixture.table([
            Fixture.service("web", ip: "10.96.0.10", endpoints: [b4], type: .nodePort, nodePort: 30080),
        ])
        try await plane.apply(TableUpdate(previous: nil, current: table, diff: nil))

        // The node port answers on the node's address inside --nodeport-addresses only.
        let inside = lab.tcp("192.168.50.1", 30080)
        #expect(inside.hasPrefix("pod-b"), "node port in range: \(inside)")
        let outside = lab.tcp("10.244.1.1", 30080, from: lab.pods["pod-a"])
        #expect(!outside.hasPrefix("pod-"), "node port out of range: \(outside)")
        // --masquerade-all: even a pod's traffic to a cluster IP is masqueraded.
        let fromPod = lab.tcp("10.96.0.10", 80, from: lab.pods["pod-a"])
        #expect(fromPod == "pod-b 10.244.2.1", "masquerade-all: \(fromPod)")
    }
}

extension NFTablesTrafficTests {
    /// Scaling a service moves it to another dispatch chain by changing its number in
    /// `@service-ips` (data, not a verdict). The number (and a session-affinity slot) travels in
    /// the skb priority, so a mark another component set before dispatch (a CNI, policy routing)
    /// reaches the pod unchanged.
    @Test func scalingMovesTrafficAndLeavesThePacketMarkAlone() async throws {
        let lab = TrafficLab()
        defer { lab.tearDown() }
        try lab.setUp()
        let plane = try NFTablesDataPlane(settings: ProxySettings(clusterCIDRs: TrafficLab.clusterCIDRs),
                                          families: [.ipv4], netnsPath: lab.nodePath)
        let web = Fixture.service("web", ip: "10.96.0.10", endpoints: [a4], type: .nodePort, nodePort: 30080)
        // Session affinity carries its endpoint slot in the priority too.
        let sticky = Fixture.service("sticky", ip: "10.96.0.50", endpoints: [a4, b4], type: .nodePort, nodePort: 30050,
                                     affinity: 600)
        let t1 = Fixture.table([web, sticky], version: 1)
        try await plane.apply(TableUpdate(previous: nil, current: t1, diff: nil))
        // Someone else's table marks service traffic before DNAT and counts the marks after it.
        let marker = """
            nft -f - <<'NFT'
            table ip marker {
                chain before { type filter hook prerouting priority -150; tcp dport { 80, 30080, 30050 } meta mark set meta mark | 0x80; }
                chain after {
                    type filter hook forward priority 10;
                    tcp dport 8080 ct state new meta mark & 0x80 == 0x80 counter
                    tcp dport 8080 ct state new meta mark & 0x80 != 0x80 counter
                }
            }
            NFT
            """
        let marked = lab.ns.exec(lab.node, marker)
        #expect(marked.status == 0, "\(marked.output)")
        #expect(lab.spread("10.96.0.10", 80, count: 6) == ["pod-a": 6])
        let stuck = lab.spread("10.96.0.50", 80, count: 6)
        #expect(stuck.count == 1 && stuck["error"] == nil, "affinity: \(stuck)")
        let stuckNodePort = lab.spread("192.168.50.1", 30050, count: 6)
        #expect(stuckNodePort.count == 1 && stuckNodePort["error"] == nil, "affinity, node port: \(stuckNodePort)")
        // Masqueraded (policy Cluster): the pod sees the node's address.
        let masqueraded = lab.tcp("192.168.50.1", 30050)
        #expect(masqueraded.hasSuffix("10.244.1.1") || masqueraded.hasSuffix("10.244.2.1"), "\(masqueraded)")

        // 1 → 2 endpoints: a new dispatch chain, one transaction, both pods answer.
        var web2 = web
        web2.endpoints = [a4, b4]; web2.clusterEndpoints = web2.endpoints
        let t2 = Fixture.table([web2, sticky], version: 2)
        try await plane.apply(TableUpdate(previous: t1, current: t2, diff: TableDiff(changed: [web.name])))
        let up = await plane.lastSyncStats
        #expect(up.kind == .incremental && up.error == nil, "\(up)")
        let spread = lab.spread("10.96.0.10", 80, count: 16)
        #expect(spread["pod-a", default: 0] > 0 && spread["pod-b", default: 0] > 0, "after scaling up: \(spread)")
        let nodePort = lab.spread("192.168.50.1", 30080, count: 12)
        #expect(nodePort["pod-a", default: 0] > 0 && nodePort["pod-b", default: 0] > 0, "node port: \(nodePort)")

        // 2 → 1, the other pod: only it answers.
        var web3 = web
        web3.endpoints = [b4]; web3.clusterEndpoints = web3.endpoints
        let t3 = Fixture.table([web3, sticky], version: 3)
        try await plane.apply(TableUpdate(previous: t2, current: t3, diff: TableDiff(changed: [web.name])))
        #expect(lab.spread("10.96.0.10", 80, count: 6) == ["pod-b": 6])

        // Every new connection reached its pod with the mark it had before dispatch.
        let counters = lab.ns.exec(lab.node, "nft list chain ip marker after").output
            .components(separatedBy: "counter packets ").dropFirst()
            .compactMap { Int($0.prefix { $0.isNumber }) }
        #expect(counters.count == 2 && counters[0] >= 53 && counters[1] == 0, "marked, unmarked: \(counters)")
    }
}
