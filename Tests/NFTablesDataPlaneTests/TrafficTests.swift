import Foundation
import NetworkTypes
import ServiceTable
import Testing
@testable import NFTablesDataPlane

/// Real traffic through the ruleset: a client and two pods around a node namespace.
@Suite("NFTables traffic (scratch namespaces)", .serialized,
       .enabled(if: isRoot, "needs root (CAP_NET_ADMIN) to create network namespaces"))
struct NFTablesTrafficTests {
    let a4 = Fixture.ep("10.244.1.2"), b4 = Fixture.ep("10.244.2.2")
    let a6 = Fixture.ep("fd00:244:1::2"), b6 = Fixture.ep("fd00:244:2::2")

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

        // No endpoints, and an unknown port on a known cluster IP: refused at once, not timed out.
        let clock = ContinuousClock()
        let t = clock.now
        let refused = lab.tcp("10.96.0.20", 80)
        #expect(refused.contains("refused"), "no endpoints: \(refused)")
        let unknownPort = lab.tcp("10.96.0.10", 81)
        #expect(unknownPort.contains("refused"), "unknown port: \(unknownPort)")
        #expect(clock.now - t < .seconds(2))
    }
}
