import Foundation
import NetworkTypes
import ServiceTable
import Testing
@testable import NFTablesDataPlane

/// The data plane against the kernel, in a scratch namespace; assertions read the ruleset back
/// with the `nft` tool (an independent reader).
@Suite("NFTables kernel (in a scratch network namespace)", .serialized,
       .enabled(if: canUseNetns, netnsSkipReason))
struct NFTablesKernelTests {
    let settings = ProxySettings(clusterCIDRs: [CIDR("10.244.0.0/16")!])
    let web = Fixture.service("web", ip: "10.96.0.10", endpoints: [Fixture.ep("10.244.1.2"), Fixture.ep("10.244.2.3")])
    let dns = Fixture.service("dns", ip: "10.96.0.53", "fd00:96::53", port: 53, proto: .udp,
                              endpoints: [Fixture.ep("10.244.1.9", 53), Fixture.ep("fd00:244::9", 53)])
    let empty = Fixture.service("empty", ip: "10.96.0.20")

    /// Elements of one map or set, as `nft` prints them, one per line.
    func elements(_ ns: Namespaces, _ n: String, _ set: String, family: String = "ip") -> [String] {
        let out = ns.exec(n, "nft -j list set \(family) kproxy \(set) 2>/dev/null || nft -j list map \(family) kproxy \(set)").output
        guard let data = out.data(using: .utf8),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let items = json["nftables"] as? [[String: Any]] else { return [] }
        for item in items {
            if let s = (item["set"] ?? item["map"]) as? [String: Any] {
                return ((s["elem"] as? [Any]) ?? []).map { "\($0)" }
            }
        }
        return []
    }

    /// Where each destination of `@service-ips` and `@service-nodeports` goes: its dispatch
    /// chain's number looked up in `@dispatch-chains`, as `nft` lists them.
    func dispatch(_ ns: Namespaces, _ n: String, family: String = "ip") -> [String: String] {
        func pairs(_ map: String) -> [(String, String)] {
            let out = ns.exec(n, "nft list map \(family) kproxy \(map)").output
            guard let open = out.range(of: "elements = {"), let close = out[open.upperBound...].firstIndex(of: "}")
            else { return [] }
            return out[open.upperBound..<close].split(separator: ",").compactMap { item in
                let parts = item.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: " : ")
                return parts.count == 2 ? (parts[0], parts[1]) : nil
            }
        }
        let chains = Dictionary(pairs("dispatch-chains").map { ($0.0, String($0.1.dropFirst("goto ".count))) },
                                uniquingKeysWith: { a, _ in a })
        var out: [String: String] = [:]
        for (key, number) in pairs("service-ips") + pairs("service-nodeports") { out[key] = chains[number] ?? "?\(number)" }
        return out
    }

    func chains(_ ns: Namespaces, _ n: String, _ family: String = "ip") -> Set<String> {
        NFTablesDataPlane.chainNames(in: ns.exec(n, "nft list chains \(family)").output, table: "kproxy")
    }

    @Test func fullSyncProgramsMapsForBothFamilies() async throws {
        let ns = Namespaces()
        defer { ns.destroy() }
        let n = try ns.create("node")
        let plane = try NFTablesDataPlane(settings: settings, netnsPath: ns.path(n))
        let sctp = Fixture.service("diameter", ip: "10.96.0.70", "fd00:96::70", port: 3868, proto: .sctp,
                                   endpoints: [Fixture.ep("10.244.1.7", 3868), Fixture.ep("fd00:244::7", 3868)],
                                   type: .nodePort, nodePort: 30868)
        try await plane.apply(TableUpdate(previous: nil, current: Fixture.table([web, dns, empty, sctp]), diff: nil))
        let out = ns.exec(n, "nft list ruleset").output
        #expect(out.contains("table ip kproxy"))
        #expect(out.contains("table ip6 kproxy"))
        let v4 = dispatch(ns, n), v6 = dispatch(ns, n, family: "ip6")
        #expect(v4 == ["10.96.0.70 . sctp . 3868": "svc-1", "sctp . 30868": "np-1",
                       "10.96.0.10 . tcp . 80": "svc-2", "10.96.0.53 . udp . 53": "svc-1"])
        #expect(v6 == ["fd00:96::70 . sctp . 3868": "svc-1", "sctp . 30868": "np-1", "fd00:96::53 . udp . 53": "svc-1"])
        #expect(elements(ns, n, "no-endpoint-services").map { $0.contains("10.96.0.20") } == [true])
        // No per-service verdicts: the only verdict map is the dispatch chains'.
        #expect(out.components(separatedBy: ": verdict").count - 1 == 1 + 1)   // ip and ip6
        #expect(elements(ns, n, "backends-0").count == 3)   // web, dns and diameter (IPv4)
        #expect(elements(ns, n, "backends-1").count == 1)   // web's second endpoint
        #expect(elements(ns, n, "backends-0", family: "ip6").count == 2)
        #expect(elements(ns, n, "cluster-ips").count == 4)
        #expect(chains(ns, n).isSuperset(of: ["svc-1", "svc-2", "pick-0", "pick-1", "np-1", "np-pick-0"]))
    }

    @Test func incrementalSyncChangesOnlyTheServicesInTheDiff() async throws {
        let ns = Namespaces()
        defer { ns.destroy() }
        let n = try ns.create("node")
        let plane = try NFTablesDataPlane(settings: settings, families: [.ipv4], netnsPath: ns.path(n))
        let t1 = Fixture.table([web, dns, empty], version: 1)
        try await plane.apply(TableUpdate(previous: nil, current: t1, diff: nil))
        let dnsBefore = elements(ns, n, "backends-0").filter { $0.contains("10.96.0.53") }

        // web: second endpoint replaced, a third added (needs svc-3, pick-2 and backends-2).
        var web2 = web
        web2.endpoints = [Fixture.ep("10.244.1.2"), Fixture.ep("10.244.3.4"), Fixture.ep("10.244.4.5")]
        web2.clusterEndpoints = web2.endpoints
        let t2 = Fixture.table([web2, dns, empty], version: 2)
        try await plane.apply(TableUpdate(previous: t1, current: t2, diff: TableDiff(changed: [web.name])))
        let s2 = await plane.lastSyncStats
        #expect(s2.kind == .incremental)
        // Removed: the service-ips entry (svc-2's number), the old second endpoint, svc-2's number.
        #expect(s2.elementsRemoved == 3)
        // Added: the service-ips entry (svc-3's number), endpoints 2 and 3, svc-3's number.
        #expect(s2.elementsAdded == 4)
        #expect(dispatch(ns, n)["10.96.0.10 . tcp . 80"] == "svc-3")
        #expect(s2.chainsAdded == 2)      // svc-3, pick-2
        #expect(s2.bytes < 2_000)
        let c2 = chains(ns, n)
        #expect(c2.contains("svc-3") && c2.contains("pick-2") && !c2.contains("svc-2"))
        #expect(elements(ns, n, "backends-2").count == 1)
        #expect(elements(ns, n, "backends-0").filter { $0.contains("10.96.0.53") } == dnsBefore)

        // web removed: its chains and the now unused third backends map go away.
        let t3 = Fixture.table([dns, empty], version: 3)
        try await plane.apply(TableUpdate(previous: t2, current: t3, diff: TableDiff(removed: [web.name])))
        let c3 = chains(ns, n)
        #expect(!c3.contains("svc-3") && !c3.contains("pick-2") && !c3.contains("pick-1"))
        #expect(!ns.exec(n, "nft list ruleset").output.contains("backends-2"))
        #expect(elements(ns, n, "cluster-ips").count == 2)
    }

    @Test func refusedTransactionLeavesThePreviousRuleset() async throws {
        let ns = Namespaces()
        defer { ns.destroy() }
        let n = try ns.create("node")
        let observed = ObservedStats()
        let plane = try NFTablesDataPlane(settings: settings, families: [.ipv4], netnsPath: ns.path(n),
                                          observer: { observed.append($0) })
        let t1 = Fixture.table([web, empty], version: 1)
        try await plane.apply(TableUpdate(previous: nil, current: t1, diff: nil))
        // Someone else put a conflicting element where the new service's entry must go.
        ns.exec(n, "nft add element ip kproxy service-ips '{ 10.96.0.99 . tcp . 80 : 0:63 }'")
        let before = ns.exec(n, "nft list ruleset").output

        let late = Fixture.service("late", ip: "10.96.0.99", endpoints: [Fixture.ep("10.244.9.9")])
        var web2 = web
        web2.endpoints = [Fixture.ep("10.244.1.2")]
        web2.clusterEndpoints = web2.endpoints
        let t2 = Fixture.table([web2, empty, late], version: 2)
        await #expect(throws: NFTError.self) {
            try await plane.apply(TableUpdate(previous: t1, current: t2,
                                              diff: TableDiff(added: [late.name], changed: [web.name])))
        }
        #expect(ns.exec(n, "nft list ruleset").output == before, "a refused transaction changed the ruleset")
        #expect(observed.all.last?.error?.contains("File exists") == true, "observed: \(observed.all)")
        do {
            try await plane.apply(TableUpdate(previous: t1, current: t2,
                                              diff: TableDiff(added: [late.name], changed: [web.name])))
        } catch let e as NFTError {
            #expect(e.message.contains("Error"), "message: \(e.message)")
        }
        // The controller's retry is a full sync, which replaces the foreign element.
        try await plane.apply(TableUpdate(previous: nil, current: t2, diff: nil))
        #expect(dispatch(ns, n)["10.96.0.99 . tcp . 80"] == "svc-1")
    }

    @Test func largeIncrementalStepGoesThroughOneBatch() async throws {
        let ns = Namespaces()
        defer { ns.destroy() }
        let n = try ns.create("node")
        let plane = try NFTablesDataPlane(settings: settings, families: [.ipv4], netnsPath: ns.path(n))
        let node = Fixture.node
        let t1 = ServiceTable(version: 1, node: node, entries: NFTBenchmark.syntheticEntries(count: 1_500, endpoints: 2))
        try await plane.apply(TableUpdate(previous: nil, current: t1, diff: nil))

        // Every endpoint moves, 500 services go, and the rest get a third endpoint.
        let moved = NFTBenchmark.syntheticEntries(count: 1_000, endpoints: 3, endpointShift: 100_000)
        let t2 = ServiceTable(version: 2, node: node, entries: moved)
        try await plane.apply(TableUpdate(previous: t1, current: t2, diff: TableDiff.between(t1, t2)))
        let s = await plane.lastSyncStats
        #expect(s.kind == .incremental && s.error == nil)
        #expect(s.elementsAdded > NFTablesDataPlane.largeDelta)
        #expect(elements(ns, n, "service-ips").count == 1_000)
        #expect(elements(ns, n, "backends-2").count == 1_000)
        #expect(elements(ns, n, "cluster-ips").count == 1_000)
        let c = chains(ns, n)
        #expect(c.contains("svc-3") && c.contains("pick-2") && !c.contains("svc-2"))
        let listing = ns.exec(n, "nft list map ip kproxy backends-0").output
        #expect(listing.contains("10.96.0.1 . tcp . 80 : 10.129.134.160 . 8080"))   // 10.128.0.0 + 100000

        // And back, incrementally: the third pick chain and its map go away.
        try await plane.apply(TableUpdate(previous: t2, current: t1, diff: TableDiff.between(t2, t1)))
        #expect(!chains(ns, n).contains("pick-2"))
        #expect(elements(ns, n, "service-ips").count == 1_500)
    }

    @Test func twoServicesClaimingOneExternalIPDoNotStopTheSync() async throws {
        let ns = Namespaces()
        defer { ns.destroy() }
        let n = try ns.create("node")
        let plane = try NFTablesDataPlane(settings: settings, families: [.ipv4], netnsPath: ns.path(n))
        // The API allows two Services to list the same external IP and port.
        let a = Fixture.service("a", ip: "10.96.0.11", endpoints: [Fixture.ep("10.244.1.1"), Fixture.ep("10.244.1.2")],
                                externalIPs: ["192.168.60.1"])
        let b = Fixture.service("b", ip: "10.96.0.12", endpoints: [Fixture.ep("10.244.2.1")], externalIPs: ["192.168.60.1"])
        try await plane.apply(TableUpdate(previous: nil, current: Fixture.table([a, b, dns]), diff: nil))
        let s = await plane.lastSyncStats
        #expect(s.error == nil && s.replacedBecause == nil)
        #expect(s.conflicts > 0)
        #expect(s.conflictClaimants == ["192.168.60.1 tcp 80: default/a, default/b"], "\(s.conflictClaimants)")
        #expect(elements(ns, n, "service-ips").filter { $0.contains("192.168.60.1") }.count == 1)
        #expect(elements(ns, n, "service-ips").count == 4)   // a, b, dns cluster IPs + the external IP once

        // One claimant goes away: whichever was programmed, the other now owns the address.
        let t1 = Fixture.table([a, b, dns], version: 1)
        try await plane.apply(TableUpdate(previous: nil, current: t1, diff: nil))
        let t2 = Fixture.table([a, dns], version: 2)
        try await plane.apply(TableUpdate(previous: t1, current: t2, diff: TableDiff(removed: [b.name])))
        let s2 = await plane.lastSyncStats
        #expect(s2.kind == .full && s2.fullBecause != nil && s2.error == nil)
        #expect(dispatch(ns, n)["192.168.60.1 . tcp . 80"] == "ext-2")
    }

    @Test func overlappingRangesLoad() async throws {
        let ns = Namespaces()
        defer { ns.destroy() }
        let n = try ns.create("node")
        let overlapping = ProxySettings(clusterCIDRs: [CIDR("10.244.0.0/16")!, CIDR("10.244.1.0/24")!],
                                        nodePortAddresses: [CIDR("192.168.0.0/16")!, CIDR("192.168.50.0/24")!])
        let plane = try NFTablesDataPlane(settings: overlapping, families: [.ipv4], netnsPath: ns.path(n))
        let lb = Fixture.service("lb", ip: "10.96.0.40", endpoints: [Fixture.ep("10.244.1.2")], type: .loadBalancer,
                                 nodePort: 30040, lbIPs: ["192.168.60.40"], sourceRanges: ["10.0.0.0/8", "10.1.0.0/16"])
        try await plane.apply(TableUpdate(previous: nil, current: Fixture.table([lb]), diff: nil))
        let s = await plane.lastSyncStats
        #expect(s.error == nil && s.replacedBecause == nil, "\(s)")
        #expect(elements(ns, n, "firewall-allow").count == 1)
    }

    @Test func restartAdoptsTheRulesetInPlace() async throws {
        let ns = Namespaces()
        defer { ns.destroy() }
        let n = try ns.create("node")
        let three = Fixture.service("three", ip: "10.96.0.30",
                                    endpoints: [Fixture.ep("10.244.1.1"), Fixture.ep("10.244.1.2"), Fixture.ep("10.244.1.3")])
        do {
            let first = try NFTablesDataPlane(settings: settings, families: [.ipv4], netnsPath: ns.path(n))
            try await first.apply(TableUpdate(previous: nil, current: Fixture.table([three, web]), diff: nil))
        }
        let handle = ns.exec(n, "nft -a list tables").output
        #expect(chains(ns, n).isSuperset(of: ["svc-3", "pick-2"]))

        // A new process: its first (full) sync refills the same tables in one transaction.
        let second = try NFTablesDataPlane(settings: settings, families: [.ipv4], netnsPath: ns.path(n))
        try await second.apply(TableUpdate(previous: nil, current: Fixture.table([web]), diff: nil))
        let stats = await second.lastSyncStats
        #expect(stats.replacedBecause == nil, "fell back to replacing: \(stats.replacedBecause ?? "")")
        #expect(ns.exec(n, "nft -a list tables").output == handle, "the table was recreated")
        let c = chains(ns, n)
        #expect(!c.contains("svc-3") && !c.contains("pick-2") && c.contains("svc-2"))
        #expect(!ns.exec(n, "nft list ruleset").output.contains("backends-2"))
        #expect(elements(ns, n, "service-ips").count == 1)
    }

    @Test func aTableOfAnotherShapeIsReplacedWhole() async throws {
        let ns = Namespaces()
        defer { ns.destroy() }
        let n = try ns.create("node")
        // Left by some other version: same table, a map of the same name with another type.
        ns.exec(n, "nft add table ip kproxy && nft add map ip kproxy service-ips '{ type ipv4_addr : verdict; }' && nft add chain ip kproxy old-chain")
        let plane = try NFTablesDataPlane(settings: settings, families: [.ipv4], netnsPath: ns.path(n))
        try await plane.apply(TableUpdate(previous: nil, current: Fixture.table([web]), diff: nil))
        let s = await plane.lastSyncStats
        #expect(s.replacedBecause != nil && s.error == nil)
        #expect(elements(ns, n, "service-ips").count == 1)
        #expect(!chains(ns, n).contains("old-chain"))
    }

    @Test func cleanupRemovesOnlyKproxysTables() async throws {
        let ns = Namespaces()
        defer { ns.destroy() }
        let n = try ns.create("node")
        ns.exec(n, "nft add table inet foreign && nft add chain inet foreign c '{ type filter hook input priority 0; }' && nft add table ip kproxyish")
        let plane = try NFTablesDataPlane(settings: settings, netnsPath: ns.path(n))
        try await plane.apply(TableUpdate(previous: nil, current: Fixture.table([web]), diff: nil))
        try await plane.cleanup()
        let tables = ns.exec(n, "nft list tables").output
        #expect(tables.contains("table inet foreign"))
        #expect(tables.contains("table ip kproxyish"))
        #expect(!tables.contains("table ip kproxy\n") && !tables.contains("table ip6 kproxy"))
        try await plane.cleanup()   // idempotent
    }
}

/// Collects what a data plane's observer reports.
final class ObservedStats: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [NFTSyncStats] = []
    func append(_ s: NFTSyncStats) { lock.withLock { items.append(s) } }
    var all: [NFTSyncStats] { lock.withLock { items } }
}
