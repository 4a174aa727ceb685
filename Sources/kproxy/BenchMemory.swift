import ArgumentParser
import Foundation
import NetnsHarness

/// `kproxy bench memory`: the resident memory of a real agent that has synced a big manifest folder.
struct BenchMemoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Resident memory of `kproxy run --mode nftables --manifests DIR` after syncing N services.",
        discussion: """
            Writes N Services and N EndpointSlices (E endpoints each) as YAML, 1000 services per file, \
            starts the agent (with --sync-period 10s) in a harness node namespace, waits until /debug/status \
            shows all N service ports programmed with nothing pending, and reads VmRSS and VmHWM from /proc; \
            then samples VmRSS every 0.25 s for 25 s, over two periodic full syncs: the lowest sample is the \
            steady state (between syncs), the highest what a periodic full sync adds on top. Baseline in the \
            same run: the same agent with an empty folder.
            """)

    @Option(help: "Service counts, comma-separated.")
    var services = "50000"

    @Option(help: "Endpoints per service.")
    var endpoints = 5

    @OptionGroup var out: BenchOutputOptions

    struct Row: Codable {
        var services: Int
        var endpoints: Int
        var vmRSSKiB: Int
        var vmHWMKiB: Int
        /// Lowest and highest of the samples taken over two periodic full syncs.
        var steadyVmRSSKiB: Int
        var resyncVmRSSKiB: Int
        var secondsToSynced: Double
    }

    func run() async throws {
        if let reason = Cluster.unsupportedReason { throw ValidationError(reason) }
        var rows: [Row] = []
        for n in [0] + (try Bench.sizes(services)) {
            rows.append(try await Cluster.with { cluster in
                if n > 0 {
                    try BenchManifests(services: n, endpoints: endpoints, node: cluster.options.nodeName)
                        .write(to: cluster.manifestDirectory)
                } else {
                    _ = cluster.manifestDirectory
                }
                let agent = try cluster.runKproxy(extra: ["--sync-period", "10s"])
                let waited = try Bench.waitForAgent(cluster, agent: agent, servicePorts: n, timeout: 1200)
                usleep(2_000_000)  // let the first sync's garbage go
                guard let m = Bench.memory(pid: agent.pid) else { throw HarnessError("kproxy is gone") }
                // One reading could fall inside a periodic full sync (its transient peak): sample.
                var samples: [Int] = []
                for _ in 0..<100 {
                    usleep(250_000)
                    guard let now = Bench.memory(pid: agent.pid) else { throw HarnessError("kproxy is gone") }
                    samples.append(now.rss)
                }
                guard let last = Bench.memory(pid: agent.pid) else { throw HarnessError("kproxy is gone") }
                return Row(services: n, endpoints: n > 0 ? endpoints : 0, vmRSSKiB: m.rss, vmHWMKiB: last.hwm,
                           steadyVmRSSKiB: samples.min()!, resyncVmRSSKiB: samples.max()!, secondsToSynced: waited)
            })
        }
        let empty = rows[0]
        var table = BenchTable(headers: ["services × endpoints", "VmRSS synced", "VmRSS steady", "VmRSS during resyncs",
                                         "VmHWM (peak)", "steady RSS vs empty agent", "start → synced"])
        for r in rows {
            table.rows.append([r.services == 0 ? "empty folder (baseline)" : "\(r.services) × \(r.endpoints)",
                               Bench.mib(r.vmRSSKiB), Bench.mib(r.steadyVmRSSKiB), Bench.mib(r.resyncVmRSSKiB),
                               Bench.mib(r.vmHWMKiB),
                               Bench.ratio(Double(r.steadyVmRSSKiB), Double(empty.steadyVmRSSKiB)),
                               Bench.secs(r.secondsToSynced)])
        }
        try out.emit(rows, table: table, notes: [
            "VmRSS synced: 2 s after /debug/status reported every service port programmed; steady / during resyncs: the "
                + "lowest / highest of 100 samples over 25 s (two periodic full syncs, --sync-period 10s); "
                + "start → synced includes reading and decoding the YAML",
            "target: < 150 MiB at 50k × 5",
        ])
    }
}
