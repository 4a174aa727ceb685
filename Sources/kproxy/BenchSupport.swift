#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import NetnsHarness

/// Options every `kproxy bench` subcommand shares.
struct BenchOutputOptions: ParsableArguments {
    enum Format: String, ExpressibleByArgument, CaseIterable { case table, json }

    @Option(name: [.customShort("o"), .long], help: "Output: table (default) or json.")
    var output: Format = .table

    /// Prints the table (with its notes) or the results as JSON.
    func emit<T: Encodable>(_ results: T, table: BenchTable, notes: [String] = []) throws {
        switch output {
        case .table:
            print(table.render())
            for n in notes { print("  \(n)") }
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(BenchDocument(results: results, notes: notes)), as: UTF8.self))
        }
    }
}

struct BenchDocument<T: Encodable>: Encodable {
    var results: T
    var notes: [String]
    var machine = BenchMachine()
}

/// Where the figures come from: they are only comparable within one run on one machine.
struct BenchMachine: Encodable {
    var cpus = ProcessInfo.processInfo.activeProcessorCount
    var loadAverage = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?
        .split(separator: " ").prefix(3).joined(separator: " ") ?? ""
    var date = ISO8601DateFormatter().string(from: Date())
}

/// A Markdown table, so that output can be pasted into docs as it is.
struct BenchTable {
    var headers: [String]
    var rows: [[String]] = []

    func render() -> String {
        var widths = headers.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            "| " + cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: " | ") + " |"
        }
        return ([line(headers), "|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|"]
            + rows.map(line)).joined(separator: "\n")
    }
}

enum Bench {
    /// `1000,10000` → [1000, 10000].
    static func sizes(_ text: String) throws -> [Int] {
        let v = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")) }
        guard !v.isEmpty, v.allSatisfy({ ($0 ?? 0) > 0 }) else { throw ValidationError("not a list of positive sizes: \(text)") }
        return v.map { $0! }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Wall-clock seconds of `body`.
    static func time(_ body: () throws -> Void) rethrows -> Double {
        let clock = ContinuousClock()
        let t = clock.now
        try body()
        return seconds(clock.now - t)
    }

    static func ms(_ s: Double) -> String { String(format: "%.1f ms", s * 1000) }
    static func secs(_ s: Double) -> String { s < 1 ? String(format: "%.3f s", s) : String(format: "%.2f s", s) }
    static func ratio(_ a: Double, _ b: Double) -> String { b > 0 ? String(format: a / b < 0.1 ? "%.3f×" : "%.2f×", a / b) : "–" }
    static func mib(_ kib: Int) -> String { String(format: "%.1f MiB", Double(kib) / 1024) }

    static func median(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.sorted()[v.count / 2] }

    /// Nearest-rank percentile.
    static func percentile(_ v: [Double], _ p: Double) -> Double {
        let s = v.sorted()
        return s.isEmpty ? 0 : s[min(s.count - 1, max(0, Int((p / 100 * Double(s.count)).rounded(.up)) - 1))]
    }

    /// VmRSS and VmHWM of a process, in KiB (nil once it is gone).
    static func memory(pid: Int32) -> (rss: Int, hwm: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func field(_ name: String) -> Int? {
            text.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { Int($0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ")[0]) }
        }
        guard let rss = field("VmRSS"), let hwm = field("VmHWM") else { return nil }
        return (rss, hwm)
    }

    /// The agent's /debug/status `sync` object, fetched inside the node namespace (nil until it answers).
    static func agentStatus(_ cluster: Cluster) -> [String: Any]? {
        guard let r = try? cluster.httpGet(from: cluster.node, "127.0.0.1", 10249, path: "/debug/status"),
              r.status == 200,
              let doc = try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any] else { return nil }
        return doc["sync"] as? [String: Any]
    }

    /// Waits until the agent in `cluster` has programmed `servicePorts` service ports (or more: an API
    /// server adds `default/kubernetes`) with nothing
    /// pending; returns the seconds waited. Throws if the agent exits or `timeout` passes.
    static func waitForAgent(_ cluster: Cluster, agent: ChildProcess, servicePorts: Int, timeout: Double) throws -> Double {
        let clock = ContinuousClock()
        let started = clock.now
        while true {
            if let s = agentStatus(cluster), (s["servicePorts"] as? Int ?? 0) >= servicePorts,
               s["oldestPendingChange"] == nil, s["lastSuccess"] != nil {
                return seconds(clock.now - started)
            }
            guard agent.isRunning else { throw HarnessError("kproxy exited:\n\(agent.output.suffix(3000))") }
            if seconds(clock.now - started) > timeout {
                throw HarnessError("kproxy did not program \(servicePorts) service ports within \(Int(timeout)) s; last status \(agentStatus(cluster) ?? [:])\n\(agent.output.suffix(3000))")
            }
            usleep(200_000)
        }
    }
}

/// Generated Services and EndpointSlices: `bench/svc-I` on ClusterIP 10.96.0.0 + I + 1 port 80
/// (TCP), E endpoints on 10.128.0.0/9 port 8080 on node `node` (the same addresses as
/// `NFTBenchmark.syntheticEntries`). `endpointIPs` overrides the endpoints of some services.
struct BenchManifests {
    var services: Int
    var endpoints: Int
    var node = "node-a"
    /// `discovery.k8s.io/v1` for manifest folders, `v1beta1` for the v1.20 API server.
    var sliceVersion = "v1"
    var endpointIPs: [Int: [String]] = [:]

    /// From 10.96.0.16: below it, 10.96.0.1 belongs to `kubernetes` on a real API server.
    static func clusterIP(_ i: Int) -> String { ipv4(0x0A60_0000 + UInt32(i + 16)) }

    static func ipv4(_ v: UInt32) -> String { "\(v >> 24).\((v >> 16) & 255).\((v >> 8) & 255).\(v & 255)" }

    func endpointIPs(_ i: Int) -> [String] {
        endpointIPs[i] ?? (0..<endpoints).map { Self.ipv4(0x0A80_0000 + UInt32(i * endpoints + $0)) }
    }

    func service(_ i: Int) -> String {
        """
        apiVersion: v1
        kind: Service
        metadata:
          name: svc-\(i)
          namespace: bench
        spec:
          type: ClusterIP
          clusterIP: \(Self.clusterIP(i))
          clusterIPs: [\(Self.clusterIP(i))]
          ports:
          - {name: http, port: 80, protocol: TCP, targetPort: 8080}
          selector: {app: svc-\(i)}
        """
    }

    /// The slice of service `i`; `annotations` go into its metadata.
    func slice(_ i: Int, ips: [String]? = nil, annotations: [String: String] = [:]) -> String {
        let where_ = sliceVersion == "v1" ? "nodeName: \(node)" : "topology: {kubernetes.io/hostname: \(node)}"
        let eps = (ips ?? endpointIPs(i)).map { "- {addresses: [\($0)], conditions: {ready: true}, \(where_)}" }
        let notes = annotations.isEmpty ? "" : "\n  annotations: {"
            + annotations.map { "\"\($0)\": \"\($1)\"" }.joined(separator: ", ") + "}"
        return """
        apiVersion: discovery.k8s.io/\(sliceVersion)
        kind: EndpointSlice
        metadata:
          name: svc-\(i)-abcde
          namespace: bench
          labels: {kubernetes.io/service-name: svc-\(i)}\(notes)
        addressType: IPv4
        endpoints:
        \(eps.joined(separator: "\n"))
        ports:
        - {name: http, port: 8080, protocol: TCP}
        """
    }

    /// One multi-document YAML text for services `range`.
    func yaml(_ range: Range<Int>) -> String {
        range.map { service($0) + "\n---\n" + slice($0) }.joined(separator: "\n---\n") + "\n"
    }

    /// Writes the objects into `dir`, `perFile` services per file; returns the number of files.
    @discardableResult
    func write(to dir: String, perFile: Int = 1000) throws -> Int {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var files = 0
        for start in stride(from: 0, to: services, by: perFile) {
            try yaml(start..<min(services, start + perFile))
                .write(toFile: String(format: "%@/bench-%06d.yaml", dir, start), atomically: true, encoding: .utf8)
            files += 1
        }
        return files
    }

    /// The namespace the objects live in, for an API server.
    static let namespaceYAML = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n"
}
