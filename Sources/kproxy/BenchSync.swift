import ArgumentParser
import Foundation
import NFTablesDataPlane
import NetnsHarness

/// `kproxy bench sync`: kproxy's nftables syncs on synthetic tables (NFTBenchmark), against the
/// baseline of `nft -f` loading kube-proxy's own nftables shape of the same size.
struct BenchSyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Time nftables full syncs, resyncs and one-service updates in a scratch network namespace.",
        discussion: """
            For each size: kproxy's data plane programs N ClusterIP services × E endpoints from empty \
            (one transaction), resyncs the same table, then replaces one endpoint of one service \
            (incremental, median of 9), scales one service by one endpoint up and down, and adds and \
            removes a service (median of 9 each). Baseline, in the same run: `nft -f` loading a kube-proxy-shaped \
            ruleset (a chain and an anonymous `numgen … vmap` per service, a chain per endpoint, verdict-map \
            dispatch), then a one-service `nft -f` transaction on it — only up to --baseline-max services, \
            because that shape grows faster than linearly (minutes at 10k).
            """)

    @Option(help: "Service counts, comma-separated.")
    var services = "1000,10000,50000"

    @Option(help: "Endpoints per service.")
    var endpoints = 5

    @Option(name: .customLong("baseline-max"), help: "Largest size the kube-proxy-shaped baseline is loaded at (0: none).")
    var baselineMax = 5000

    @OptionGroup var out: BenchOutputOptions

    struct Row: Codable {
        var services: Int
        var endpoints: Int
        var fullSyncSeconds: Double
        var resyncSeconds: Double
        var oneServiceUpdateSeconds: Double
        /// One service scaled by ±1 endpoint (its dispatch chain changes).
        var oneServiceScaleSeconds: Double
        /// A service added, then removed, in turn.
        var serviceAddRemoveSeconds: Double
        var transactionBytes: Int
        /// Of the full sync: building the transaction text, and libnftables + kernel.
        var renderSeconds: Double
        var kernelSeconds: Double
        /// `nft -f` with the kube-proxy shape (nil above --baseline-max).
        var baselineFullSeconds: Double?
        var baselineUpdateSeconds: Double?
    }

    func run() async throws {
        if let reason = Cluster.unsupportedReason { throw ValidationError(reason) }
        let sizes = try Bench.sizes(services)
        var rows: [Row] = []
        for n in sizes {
            let r = try await NFTBenchmark.run(sizes: [n], endpoints: endpoints)[0]
            var row = Row(services: n, endpoints: endpoints, fullSyncSeconds: r.fullSyncSeconds, resyncSeconds: r.resyncSeconds,
                          oneServiceUpdateSeconds: r.oneServiceUpdateSeconds,
                          oneServiceScaleSeconds: r.oneServiceScaleSeconds,
                          serviceAddRemoveSeconds: r.serviceAddRemoveSeconds, transactionBytes: r.fullSync.bytes,
                          renderSeconds: r.fullSync.renderSeconds, kernelSeconds: r.fullSync.kernelSeconds)
            if n <= baselineMax {
                (row.baselineFullSeconds, row.baselineUpdateSeconds) = try KubeProxyShapeBaseline.measure(services: n, endpoints: endpoints)
            }
            rows.append(row)
        }
        var table = BenchTable(headers: ["services × endpoints", "full sync", "(render + nft/kernel)", "resync", "one-service update", "scale ±1", "service ±",
                                         "baseline nft -f full", "baseline update", "full: kproxy/baseline", "update: kproxy/baseline"])
        for r in rows {
            table.rows.append(["\(r.services) × \(r.endpoints)", Bench.secs(r.fullSyncSeconds),
                               "\(Bench.secs(r.renderSeconds)) + \(Bench.secs(r.kernelSeconds))", Bench.secs(r.resyncSeconds),
                               Bench.ms(r.oneServiceUpdateSeconds), Bench.ms(r.oneServiceScaleSeconds),
                               Bench.ms(r.serviceAddRemoveSeconds),
                               r.baselineFullSeconds.map(Bench.secs) ?? "not run", r.baselineUpdateSeconds.map(Bench.ms) ?? "not run",
                               r.baselineFullSeconds.map { Bench.ratio(r.fullSyncSeconds, $0) } ?? "–",
                               r.baselineUpdateSeconds.map { Bench.ratio(r.oneServiceUpdateSeconds, $0) } ?? "–"])
        }
        try out.emit(rows, table: table, notes: [
            "wall clock; kproxy: render + libnftables + kernel in process; baseline: `ip netns exec NS nft -f FILE` (process start included)",
            "baseline loaded only up to \(baselineMax) services (--baseline-max): the kube-proxy shape is super-linear",
            "targets: 10k×5 full < 0.5 s, 50k×5 full < 2.5 s, one-service update < 5 ms at 50k",
            "one-service update: an endpoint replaced; scale ±1: one endpoint added or removed (the service changes dispatch chain); service ±: a service added or removed",
        ])
    }
}

/// kube-proxy's nftables shape (pkg/proxy/nftables, simplified to ClusterIPs): a `service-ips`
/// verdict map dispatching to one chain per service, which picks an endpoint chain through an
/// anonymous `numgen random mod E vmap`; each endpoint chain DNATs. Same addresses as NFTBenchmark.
enum KubeProxyShapeBaseline {
    static func ruleset(services n: Int, endpoints e: Int) -> String {
        var s = """
        table ip kube-proxy {
          map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
          chain mark-for-masquerade { meta mark set meta mark or 0x4000; }
          chain services { ip daddr . meta l4proto . th dport vmap @service-ips; }
          chain nat-prerouting { type nat hook prerouting priority -100; policy accept; jump services; }
          chain nat-output { type nat hook output priority -100; policy accept; jump services; }
        }

        """
        s.reserveCapacity(n * (300 + e * 200))
        for i in 0..<n { s += service(i, endpoints: e, generation: 0) }
        return s
    }

    /// The chains of service `i` and its map element; `generation` moves its last endpoint.
    static func service(_ i: Int, endpoints e: Int, generation: Int) -> String {
        let ip = BenchManifests.clusterIP(i)
        let svc = "service-\(i)-bench/svc-\(i)/tcp/http"
        var eps = (0..<e).map { BenchManifests.ipv4(0x0A80_0000 + UInt32(i * e + $0)) }
        if generation > 0 { eps[e - 1] = BenchManifests.ipv4(0x0B00_0000 + UInt32(generation)) }
        var s = ""
        for ep in eps {
            let chain = "endpoint-\(ep)-\(i)"
            s += "add chain ip kube-proxy \(chain)\n"
            s += "add rule ip kube-proxy \(chain) ip saddr \(ep) jump mark-for-masquerade\n"
            s += "add rule ip kube-proxy \(chain) meta l4proto tcp dnat to \(ep):8080\n"
        }
        let vmap = eps.enumerated().map { "\($0) : goto endpoint-\($1)-\(i)" }.joined(separator: ", ")
        s += "add chain ip kube-proxy \(svc)\n"
        if generation > 0 { s += "flush chain ip kube-proxy \(svc)\n" }
        s += "add rule ip kube-proxy \(svc) ip daddr \(ip) tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade\n"
        s += "add rule ip kube-proxy \(svc) numgen random mod \(e) vmap { \(vmap) }\n"
        if generation == 0 { s += "add element ip kube-proxy service-ips { \(ip) . tcp . 80 : goto \(svc) }\n" }
        return s
    }

    /// Loads the ruleset into a scratch namespace with `nft -f`, then applies three one-service
    /// transactions; returns (full load seconds, median update seconds).
    static func measure(services n: Int, endpoints e: Int) throws -> (Double, Double) {
        let ns = "kpbench-\(getpid())-base-\(n)"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(ns).path
        _ = try? Shell.run(["ip", "netns", "del", ns], check: false)
        try Shell.run(["ip", "netns", "add", ns])
        defer {
            _ = try? Shell.run(["ip", "netns", "del", ns], check: false)
            try? FileManager.default.removeItem(atPath: dir)
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try ruleset(services: n, endpoints: e).write(toFile: "\(dir)/full.nft", atomically: true, encoding: .utf8)
        let full = try Bench.time { try Shell.run(["ip", "netns", "exec", ns, "nft", "-f", "\(dir)/full.nft"], timeout: 3600) }
        var updates: [Double] = []
        for g in 1...3 {
            try service(n / 2, endpoints: e, generation: g).write(toFile: "\(dir)/update.nft", atomically: true, encoding: .utf8)
            updates.append(try Bench.time { try Shell.run(["ip", "netns", "exec", ns, "nft", "-f", "\(dir)/update.nft"], timeout: 600) })
        }
        return (full, Bench.median(updates))
    }
}
