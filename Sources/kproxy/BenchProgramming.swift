import ArgumentParser
import Foundation
import NetnsHarness

/// `kproxy bench programming`: network programming latency (EndpointSlice written to the API
/// server → element in the kernel) under churn, with a real kube-apiserver and `kproxy run --kubeconfig`.
struct BenchProgrammingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "programming",
        abstract: "Network programming latency (API write → kernel rule) under EndpointSlice churn, against a real kube-apiserver.",
        discussion: """
            In a harness node namespace: etcd + kube-apiserver v1.20.2 (scripts/kube-apiserver.sh start), N Services \
            and EndpointSlices created with kubectl, and `kproxy run --kubeconfig … --hostname-override node-a`. \
            Then --churn EndpointSlice updates at --rate per second, each moving one endpoint of one service to a \
            fresh address and carrying `endpoints.kubernetes.io/last-change-trigger-time` = the time of the write. \
            Latency is measured in the kernel: `nft monitor` in the node, each line stamped on arrival; a write is \
            programmed when the element with its new address appears. The agent's own \
            kubeproxy_network_programming_duration_seconds (over the churn only) is reported next to it.
            """)

    @Option(help: "Service counts, comma-separated.")
    var services = "1000,10000"

    @Option(help: "Endpoints per service.")
    var endpoints = 2

    @Option(help: "EndpointSlice updates per size.")
    var churn = 200

    @Option(help: "Updates per second.")
    var rate = 10.0

    @Option(name: .customLong("min-sync-period"), help: "Passed to the agent (its default: 1s).")
    var minSyncPeriod: String?

    @Option(name: .customLong("apiserver-script"), help: "scripts/kube-apiserver.sh of this repository.")
    var apiserverScript = "scripts/kube-apiserver.sh"

    @OptionGroup var out: BenchOutputOptions

    struct Row: Codable {
        var services: Int
        var updates: Int
        var observed: Int
        /// Kernel-observed write → element, seconds.
        var p50: Double
        var p90: Double
        var p99: Double
        var max: Double
        /// From the agent's histogram over the churn: mean (sum/count) and the bucket bounds holding p50/p99.
        var metricCount: Int
        var metricMean: Double
        var metricP50Bucket: String
        var metricP99Bucket: String
        var agentRSSKiB: Int
        var secondsToCreateObjects: Double
        var secondsToFirstSync: Double
    }

    func run() async throws {
        if let reason = Cluster.unsupportedReason { throw ValidationError(reason) }
        let script = URL(fileURLWithPath: apiserverScript).standardizedFileURL.path
        guard FileManager.default.isExecutableFile(atPath: script) else {
            throw ValidationError("\(apiserverScript) not found: run from the repository root or pass --apiserver-script")
        }
        var rows: [Row] = []
        for n in try Bench.sizes(services) {
            rows.append(try await Cluster.with { cluster in try measure(cluster, services: n, script: script) })
        }
        var table = BenchTable(headers: ["services × endpoints", "updates seen", "p50", "p90", "p99", "max",
                                         "agent metric mean", "metric p50 / p99 bucket", "agent RSS"])
        for r in rows {
            table.rows.append(["\(r.services) × \(endpoints)", "\(r.observed)/\(r.updates)", Bench.ms(r.p50), Bench.ms(r.p90),
                               Bench.ms(r.p99), Bench.ms(r.max), Bench.ms(r.metricMean),
                               "≤ \(r.metricP50Bucket) / ≤ \(r.metricP99Bucket)", Bench.mib(r.agentRSSKiB)])
        }
        try out.emit(rows, table: table, notes: [
            "latency = EndpointSlice PATCH sent (the trigger-time annotation) → element seen by `nft monitor` in the node",
            minSyncPeriod.map { "agent run with --min-sync-period \($0)" }
                ?? "agent defaults: --min-sync-period 1s (changes within it are coalesced), so ~0.5 s of each figure is the coalescing wait",
            "\(churn) updates at \(rate)/s; kube-apiserver, etcd, kubectl and the agent share the machine's 2 cores",
        ])
    }

    private func measure(_ cluster: Cluster, services n: Int, script: String) throws -> Row {
        let node = cluster.node
        let dir = "\(cluster.workDir)/apiserver"
        let log = "\(cluster.workDir)/apiserver-start.log"
        let status = try Shell.spawnAndWait(["ip", "netns", "exec", node.name, script, "start", dir], log: log,
                                            environment: ["KPROXY_OWNER_PID": "\(getpid())"])
        defer { _ = try? Shell.spawnAndWait(["ip", "netns", "exec", node.name, script, "stop", dir], log: "/dev/null") }
        let started = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard status == 0, let kubeconfig = started.split(separator: "\n").last(where: { $0.hasPrefix("KUBECONFIG=") })?
            .dropFirst("KUBECONFIG=".count).description else { throw HarnessError("\(script) start failed (\(status)):\n\(started)") }
        let server = try String(contentsOfFile: kubeconfig, encoding: .utf8).split(separator: "\n")
            .first { $0.contains("server:") }!.split(separator: " ").last!.description
        let token = try String(contentsOfFile: "\(dir)/token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

        // Objects: the namespace, then the manifests in parallel kubectl processes (1000 services a file).
        let objects = BenchManifests(services: n, endpoints: endpoints, node: cluster.options.nodeName, sliceVersion: "v1beta1")
        let manifestDir = "\(cluster.workDir)/objects"
        let files = try objects.write(to: manifestDir)
        try cluster.exec(in: node, ["kubectl", "--kubeconfig", kubeconfig, "create", "-f", "-"], input: BenchManifests.namespaceYAML)
        let createSeconds = try Bench.time {
            let errors = ErrorBox()
            DispatchQueue.concurrentPerform(iterations: min(4, files)) { worker in
                for f in stride(from: worker, to: files, by: min(4, files)) {
                    let path = String(format: "%@/bench-%06d.yaml", manifestDir, f * 1000)
                    do { try cluster.exec(in: node, ["kubectl", "--kubeconfig", kubeconfig, "create", "-f", path], timeout: 1800) }
                    catch { errors.set(error) }
                }
            }
            if let e = errors.error { throw e }
        }

        let agent = try cluster.runKproxy(["run", "--mode", "nftables", "--kubeconfig", kubeconfig,
                                           "--hostname-override", cluster.options.nodeName]
                                          + (minSyncPeriod.map { ["--min-sync-period", $0] } ?? []))
        let synced = try Bench.waitForAgent(cluster, agent: agent, servicePorts: n, timeout: 1200)
        let before = try metricHistogram(cluster)

        let monitor = try cluster.spawn(in: node, ["sh", "-c",
            "nft monitor | perl -MTime::HiRes=time -ne '$|=1; printf \"%.6f %s\", time, $_'"], label: "nft-monitor")
        defer { monitor.stop(grace: 1) }
        usleep(1_000_000)

        // Churn: update u moves the last endpoint of one service to 10.200.0.0 + u.
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var written: [(ip: String, at: Double)] = []
        let interval = 1 / rate
        let churnStart = Date().timeIntervalSince1970
        for u in 1...churn {
            let next = churnStart + Double(u - 1) * interval
            let wait = next - Date().timeIntervalSince1970
            if wait > 0 { usleep(UInt32(wait * 1e6)) }
            let k = (u * 7919) % n
            var ips = objects.endpointIPs(k)
            let ip = BenchManifests.ipv4(0x0AC8_0000 + UInt32(u))
            ips[ips.count - 1] = ip
            let now = Date()
            let patch: [String: Any] = [
                "metadata": ["annotations": ["endpoints.kubernetes.io/last-change-trigger-time": formatter.string(from: now)]],
                "endpoints": ips.map { ["addresses": [$0], "conditions": ["ready": true],
                                        "topology": ["kubernetes.io/hostname": cluster.options.nodeName]] },
            ]
            let body = String(decoding: try JSONSerialization.data(withJSONObject: patch), as: UTF8.self)
            let r = try cluster.exec(in: node, ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "\(dir)/ca.crt",
                                                "-H", "Authorization: Bearer \(token)", "-H", "Content-Type: application/merge-patch+json",
                                                "-X", "PATCH", "--data-binary", "@-",
                                                "\(server)/apis/discovery.k8s.io/v1beta1/namespaces/bench/endpointslices/svc-\(k)-abcde"],
                                     input: body, check: false)
            guard r.stdout == "200" else { throw HarnessError("PATCH failed: \(r)") }
            written.append((ip, now.timeIntervalSince1970))
        }

        // Wait until every new address is in the kernel (or 15 s), then match.
        var seen: [String: Double] = [:]
        _ = Cluster.waitUntil(timeout: 15) {
            seen = Self.firstSeen(monitor.output)
            return written.allSatisfy { seen[$0.ip] != nil }
        }
        let latencies = written.compactMap { w in seen[w.ip].map { $0 - w.at } }
        let after = try metricHistogram(cluster)
        let delta = after.minus(before)
        let rss = Bench.memory(pid: agent.pid)?.rss ?? 0
        return Row(services: n, updates: written.count, observed: latencies.count,
                   p50: Bench.percentile(latencies, 50), p90: Bench.percentile(latencies, 90),
                   p99: Bench.percentile(latencies, 99), max: latencies.max() ?? 0,
                   metricCount: delta.count, metricMean: delta.count > 0 ? delta.sum / Double(delta.count) : 0,
                   metricP50Bucket: delta.bucket(holding: 0.5), metricP99Bucket: delta.bucket(holding: 0.99),
                   agentRSSKiB: rss, secondsToCreateObjects: createSeconds, secondsToFirstSync: synced)
    }

    /// For each endpoint address added to a kproxy map (`… : 10.200.0.7 . 8080 …`), when `nft monitor` first showed it.
    static func firstSeen(_ output: String) -> [String: Double] {
        var seen: [String: Double] = [:]
        for line in output.split(separator: "\n") where line.contains("add element") {
            let words = line.split(separator: " ")
            guard let ts = Double(words[0]) else { continue }
            for (i, w) in words.enumerated() where w.hasPrefix("10.200.") && i + 2 < words.count && words[i + 1] == "." {
                if seen[String(w)] == nil { seen[String(w)] = ts }
            }
        }
        return seen
    }

    /// kubeproxy_network_programming_duration_seconds from the agent's /metrics.
    struct Histogram {
        var buckets: [(le: String, count: Int)] = []
        var sum = 0.0
        var count = 0

        func minus(_ other: Histogram) -> Histogram {
            var h = Histogram(sum: sum - other.sum, count: count - other.count)
            h.buckets = buckets.map { b in (b.le, b.count - (other.buckets.first { $0.le == b.le }?.count ?? 0)) }
            return h
        }

        /// The upper bound of the first bucket holding the quantile `q`.
        func bucket(holding q: Double) -> String {
            guard count > 0 else { return "–" }
            return buckets.first { Double($0.count) >= q * Double(count) }.map { $0.le + " s" } ?? "+Inf"
        }
    }

    private func metricHistogram(_ cluster: Cluster) throws -> Histogram {
        let r = try cluster.httpGet(from: cluster.node, "127.0.0.1", 10249, path: "/metrics")
        var h = Histogram()
        let name = "kubeproxy_network_programming_duration_seconds"
        for line in r.body.split(separator: "\n") where line.hasPrefix(name) {
            let parts = line.split(separator: " ")
            guard parts.count >= 2, let v = Double(parts[1]) else { continue }
            if line.hasPrefix(name + "_sum") { h.sum = v }
            else if line.hasPrefix(name + "_count") { h.count = Int(v) }
            else if let range = line.range(of: "le=\""), let end = line[range.upperBound...].firstIndex(of: "\"") {
                h.buckets.append((String(line[range.upperBound..<end]), Int(v)))
            }
        }
        return h
    }
}

/// The first error of parallel workers.
final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var error: Error?
    func set(_ e: Error) { lock.withLock { if error == nil { error = e } } }
}
