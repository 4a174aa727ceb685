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
                // Warm both paths once, then measure each after a conntrack flush.
                _ = try cluster.latency(from: client, pod.ipv4!, 8080, count: 50)
                try cluster.flushConntrack()
                let direct = try cluster.latency(from: client, pod.ipv4!, 8080, count: count)
                try cluster.flushConntrack()
                let viaService = try cluster.latency(from: client, vip, 80, count: count)
                try cluster.flushConntrack()
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
            "\(count) sequential new TCP connections per row, client namespace → node → pod; conntrack flushed before each row",
            "target: ClusterIP within 5% of direct at 20k services",
        ])
    }
}
