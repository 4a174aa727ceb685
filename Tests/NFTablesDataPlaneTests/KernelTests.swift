import Foundation
import NetworkTypes
import ServiceTable
import Testing
@testable import NFTablesDataPlane

@Suite("NFTables kernel (in a scratch network namespace)", .serialized,
       .enabled(if: isRoot, "needs root (CAP_NET_ADMIN) to create network namespaces"))
struct NFTablesKernelTests {
    @Test func fullSyncProgramsMaps() async throws {
        let ns = Namespaces()
        defer { ns.destroy() }
        let n = try ns.create("node")
        let plane = try NFTablesDataPlane(settings: ProxySettings(clusterCIDRs: [CIDR("10.244.0.0/16")!]),
                                          netnsPath: ns.path(n))
        let table = Fixture.table([
            Fixture.service("web", ip: "10.96.0.10", endpoints: [Fixture.ep("10.244.1.2"), Fixture.ep("10.244.2.3")]),
            Fixture.service("dns", ip: "10.96.0.53", "fd00:96::53", port: 53, proto: .udp,
                            endpoints: [Fixture.ep("10.244.1.9", 53), Fixture.ep("fd00:244::9", 53)]),
            Fixture.service("empty", ip: "10.96.0.20"),
        ])
        try await plane.apply(TableUpdate(previous: nil, current: table, diff: nil))
        let out = ns.exec(n, "nft list ruleset").output
        #expect(out.contains("table ip kproxy"))
        #expect(out.contains("table ip6 kproxy"))
        #expect(out.contains("10.96.0.10 . tcp . 80 : goto svc-2"))
        #expect(out.contains("10.96.0.53 . udp . 53 : goto svc-1"))
        #expect(out.contains("fd00:96::53 . udp . 53 : goto svc-1"))
        #expect(out.contains("10.96.0.20 . tcp . 80 : goto reject-chain"))
        print(out)
    }
}

extension NFTablesKernelTests {
    @Test func resyncRefillsInPlace() async throws {
        let ns = Namespaces()
        defer { ns.destroy() }
        let n = try ns.create("node")
        let plane = try NFTablesDataPlane(settings: ProxySettings(clusterCIDRs: [CIDR("10.244.0.0/16")!]),
                                          netnsPath: ns.path(n))
        let table = Fixture.table([
            Fixture.service("web", ip: "10.96.0.10", endpoints: [Fixture.ep("10.244.1.2"), Fixture.ep("10.244.2.3")], affinity: 60),
        ])
        try await plane.apply(TableUpdate(previous: nil, current: table, diff: nil))
        try await plane.apply(TableUpdate(previous: nil, current: table, diff: nil))
        let stats = await plane.lastSyncStats
        #expect(stats.replacedBecause == nil)
    }
}
