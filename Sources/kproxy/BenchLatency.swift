import ArgumentParser
import Foundation
import NetnsHarness
import TestpodKit

/// `kproxy bench latency`: new-connection latency through a ClusterIP against straight to the pod,
/// in a NetnsHarness cluster (client namespace → node → pod) with kproxy programming N services.
struct BenchLatencyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency",
        abstract: "Time new TCP connections through a ClusterIP and straight to the pod, with N services programmed.",
        discussion: """
            A harness cluster (client → node → pod); `kproxy run --mode nftables --manifests DIR` in the node \
            with N generated services, the last of which leads to the pod. From the client, `testpod latency` \
            makes --count sequential new connections (connect → first answer byte) straight to the pod IP \
            (the baseline) and then to the ClusterIP; conntrack is flushed in the node before each run.
            """)

    @Option(help: "Service counts, comma-separated.")
    var services = "100,20000"

    @Option(help: "Connections per run.")
    var count = 2000

    @Option(help: "Blocks per path the connections are split into, alternating the paths.")
    var rounds = 4

    @OptionGroup var out: BenchOutputOptions

    struct Row: Codable {
        var services: Int
        var direct: LatencyReport
        var clusterIP: LatencyReport
    }

    func run() async throws {
        if let reason = Cluster.unsupportedReason { throw ValidationError(reason) }
        var rows: [Row] = []
        for n in try Bench.sizes(services) {
            rows.append(try await Cluster.with(pods: [PodSpec("target", families: [.ipv4])]) { cluster in
                let pod = cluster.pod("target")
                let last = n - 1
                try BenchManifests(services: n, endpoints: 1, node: cluster.options.nodeName,
                                   endpointIPs: [last: [pod.ipv4!]]).write(to: cluster.manifestDirectory)
                let agent = try cluster.runKproxy()
                _ = try Bench.waitForAgent(cluster, agent: agent, servicePorts: n, timeout: 600)
                let client = cluster.client().namespace
                let vip = BenchManifests.clusterIP(last)
                try cluster.waitForQuery(from: client, vip, 80, count: 4) { $0.answered == 4 }
                // Warm both paths, then alternate blocks (direct, ClusterIP, ClusterIP, direct, …) so that
                // drift on the shared machine hits both alike; conntrack is flushed before each block.
                _ = try cluster.latency(from: client, pod.ipv4!, 8080, count: 100)
                _ = try cluster.latency(from: client, vip, 80, count: 100)
                var samples: [Bool: [Double]] = [true: [], false: []]
                var failed: [Bool: Int] = [true: 0, false: 0]
                for block in 0..<(2 * rounds) {
                    let direct = (block % 4 == 0 || block % 4 == 3)
                    try cluster.flushConntrack()
                    let r = direct ? try cluster.latency(from: client, pod.ipv4!, 8080, count: count / rounds, samples: true)
                        : try cluster.latency(from: client, vip, 80, count: count / rounds, samples: true)
                    samples[direct]! += r.samples ?? []
                    failed[direct]! += r.failed
                }
                try cluster.flushConntrack()
                let direct = LatencyReport(target: "\(pod.ipv4!):8080", samples: samples[true]!, failed: failed[true]!)
                let viaService = LatencyReport(target: "\(vip):80", samples: samples[false]!, failed: failed[false]!)
                return Row(services: n, direct: direct, clusterIP: viaService)
            })
        }
        var table = BenchTable(headers: ["services", "path", "p10", "p50", "p90", "p99", "failed", "p50 vs direct", "p90 vs direct"])
        func us(_ v: Double) -> String { String(format: "%.0f µs", v) }
        for r in rows {
            for (label, l) in [("direct to pod IP", r.direct), ("ClusterIP", r.clusterIP)] {
                table.rows.append(["\(r.services)", label, us(l.p10), us(l.p50), us(l.p90), us(l.p99), "\(l.failed)/\(l.count)",
                                   Bench.ratio(l.p50, r.direct.p50), Bench.ratio(l.p90, r.direct.p90)])
            }
        }
        try out.emit(rows, table: table, notes: [
            "\(count) sequential new TCP connections per row, client namespace → node → pod, in \(rounds) blocks per path alternating direct/ClusterIP (ABBA); conntrack flushed before each block",
            "target: ClusterIP within 5% of direct at 20k services",
        ])
    }
}
