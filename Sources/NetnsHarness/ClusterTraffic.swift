#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NetworkTypes
import TestpodKit

/// Running commands and long-lived processes in the namespaces, and sending traffic with testpod.
extension Cluster {
    /// Runs a command inside a namespace and waits for it (throws on a non-zero exit when `check`).
    @discardableResult
    public func exec(in ns: Namespace, _ arguments: [String], input: String? = nil, check: Bool = true,
                     timeout: Double = 60) throws -> CommandResult {
        try Shell.run(["ip", "netns", "exec", ns.name] + arguments, input: input, check: check, timeout: timeout)
    }

    /// `ip -n NS ARGS…`
    @discardableResult
    func ip(_ ns: Namespace, _ arguments: String...) throws -> CommandResult {
        try Shell.run(["ip", "-n", ns.name] + arguments)
    }

    @discardableResult
    func ip(_ ns: Namespace, check: Bool = true, _ arguments: [String]) throws -> CommandResult {
        try Shell.run(["ip", "-n", ns.name] + arguments, check: check)
    }

    /// Starts a long-running command in a namespace (e.g. `kproxy run …` in the node). The harness
    /// stops it in `destroy()`; stop it earlier with `child.stop()` (SIGTERM, then SIGKILL).
    public func spawn(in ns: Namespace, _ arguments: [String], label: String? = nil,
                      environment: [String: String]? = nil) throws -> ChildProcess {
        let name = label ?? URL(fileURLWithPath: arguments.first ?? "process").lastPathComponent
        let n = lock.withLock { children.count }
        let child = try ChildProcess(label: name, arguments: ["ip", "netns", "exec", ns.name] + arguments,
                                     logPath: "\(workDir)/\(n)-\(Self.sanitize(name)).log", environment: environment)
        lock.withLock { children.append(child) }
        return child
    }

    /// Starts the built `kproxy` in the node namespace with `arguments` (e.g.
    /// `["run", "--mode", "nftables", "--manifests", dir, "--hostname-override", cluster.options.nodeName]`).
    public func runKproxy(_ arguments: [String], environment: [String: String]? = nil) throws -> ChildProcess {
        try spawn(in: node, [try Binaries.kproxy()] + arguments, label: "kproxy", environment: environment)
    }

    /// Loads an nftables script (`nft -f -`) in a namespace (the node unless told).
    public func nft(_ script: String, in ns: Namespace? = nil) throws {
        try exec(in: ns ?? node, ["nft", "-f", "-"], input: script)
    }

    /// Deletes the conntrack entries of a namespace (the node unless told), so that one run's
    /// connections do not steer the next. Needs conntrack-tools.
    public func flushConntrack(in ns: Namespace? = nil) throws {
        let r = try exec(in: ns ?? node, ["conntrack", "-F"], check: false)
        // conntrack exits 1 when the table was already empty on some versions.
        if !r.succeeded && !r.stderr.contains("0 flow entries") && !r.stdout.contains("0 flow entries") {
            throw HarnessError("conntrack flush failed:\n\(r)")
        }
    }

    /// Makes `count` connections (or datagrams) from `ns` to `address:port` with `testpod query`
    /// and returns who answered and how the rest failed.
    public func query(from ns: Namespace, _ address: String, _ port: UInt16, _ proto: L4Protocol = .tcp,
                      count: Int = 10, timeoutMs: Int = 1000, parallel: Int = 1,
                      source: String? = nil) throws -> QueryReport {
        var args = [testpodPath, "query", "--count", "\(count)", "--timeout-ms", "\(timeoutMs)",
                    "--parallel", "\(parallel)"]
        args += Self.protocolFlags(proto)
        if let source { args += ["--source", source] }
        args.append(Self.target(address, port))
        let budget = Double(count * timeoutMs) / 1000 / Double(max(1, parallel)) + 15
        let r = try exec(in: ns, args, timeout: budget)
        do {
            return try JSONDecoder().decode(QueryReport.self, from: Data(r.stdout.utf8))
        } catch {
            throw HarnessError("cannot read testpod's report (\(error)):\n\(r)")
        }
    }

    /// Starts `testpod stream` from `ns`: `connections` long-lived connections exchanging a line every
    /// `intervalMs` for `seconds`. Collect the report with `handle.finish()`.
    public func startStream(from ns: Namespace, _ address: String, _ port: UInt16, _ proto: L4Protocol = .tcp,
                            connections: Int = 4, seconds: Double = 5, intervalMs: Int = 100,
                            timeoutMs: Int = 1000) throws -> StreamHandle {
        var args = [testpodPath, "stream", "--connections", "\(connections)", "--seconds", "\(seconds)",
                    "--interval-ms", "\(intervalMs)", "--timeout-ms", "\(timeoutMs)"]
        args += Self.protocolFlags(proto)
        args.append(Self.target(address, port))
        let child = try spawn(in: ns, args, label: "stream")
        return StreamHandle(child: child, seconds: seconds, timeoutMs: timeoutMs)
    }

    /// GETs `path` from `address:port` inside `ns` (kproxy's /healthz, a health-check node port).
    public func httpGet(from ns: Namespace, _ address: String, _ port: UInt16, path: String = "/",
                        timeoutMs: Int = 2000) throws -> HTTPResult {
        let r = try exec(in: ns, [testpodPath, "http", "--path", path, "--timeout-ms", "\(timeoutMs)",
                                  Self.target(address, port)], timeout: Double(timeoutMs) / 1000 + 15)
        do {
            return try JSONDecoder().decode(HTTPResult.self, from: Data(r.stdout.utf8))
        } catch {
            throw HarnessError("cannot read testpod http's report (\(error)):\n\(r)")
        }
    }

    /// Starts `testpod query` in the background: `count` fresh connections, one every `intervalMs`,
    /// e.g. "new connections keep working while kproxy restarts". Collect with `handle.finish()`.
    public func startQuery(from ns: Namespace, _ address: String, _ port: UInt16, _ proto: L4Protocol = .tcp,
                           count: Int, intervalMs: Int, timeoutMs: Int = 1000) throws -> QueryHandle {
        var args = [testpodPath, "query", "--count", "\(count)", "--interval-ms", "\(intervalMs)",
                    "--timeout-ms", "\(timeoutMs)"]
        args += Self.protocolFlags(proto)
        args.append(Self.target(address, port))
        let child = try spawn(in: ns, args, label: "query")
        return QueryHandle(child: child, budget: Double(count) * Double(intervalMs + timeoutMs) / 1000 + 30)
    }

    /// Starts a `testpod serve` outside a pod — in the node (a host-network endpoint), a client, … —
    /// and waits until it listens. Stopped by `destroy()`, or earlier with `child.stop()`.
    public func startServer(in ns: Namespace, name: String, tcp: [UInt16] = [], udp: [UInt16] = [],
                            address: String? = nil) throws -> ChildProcess {
        let ready = "\(workDir)/server-\(Self.sanitize(name))-\(UInt32.random(in: 0..<1_000_000)).ready"
        var args = [testpodPath, "serve", "--name", name, "--ready-file", ready]
        if !tcp.isEmpty { args += ["--tcp", tcp.map(String.init).joined(separator: ",")] }
        if !udp.isEmpty { args += ["--udp", udp.map(String.init).joined(separator: ",")] }
        if let address { args += ["--address", address] }
        let child = try spawn(in: ns, args, label: "server \(name)")
        let ok = Cluster.waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: ready) || !child.isRunning }
        guard ok, child.isRunning else {
            throw HarnessError("server \(name) did not start:\n\(child.output)")
        }
        return child
    }

    static func protocolFlags(_ proto: L4Protocol) -> [String] {
        switch proto {
        case .tcp: return []
        case .udp: return ["--udp"]
        case .sctp: return ["--sctp"]
        }
    }

    static func target(_ address: String, _ port: UInt16) -> String {
        address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}

/// A running `testpod stream`.
public struct StreamHandle: Sendable {
    public let child: ChildProcess
    let seconds: Double
    let timeoutMs: Int

    /// Waits until every connection has been tried (`testpod stream` printed `opened N of K`);
    /// returns N, the connections that answered, or throws after `timeout` seconds.
    @discardableResult
    public func waitUntilOpened(timeout: Double = 10) throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let output = child.output
            if let line = output.split(separator: "\n").first(where: { $0.hasPrefix("opened ") }),
               let n = Int(line.split(separator: " ")[1]) {
                return n
            }
            if !child.isRunning || Date() > deadline {
                throw HarnessError("testpod stream did not open its connections:\n\(output)")
            }
            usleep(10_000)
        }
    }

    /// Waits for the stream to end by itself and returns its report.
    public func finish() throws -> StreamReport {
        let budget = seconds + Double(timeoutMs) / 1000 * 3 + 30
        if child.wait(timeout: budget) == nil { child.stop() }
        return try report()
    }

    /// Ends the stream now (SIGTERM) and returns its report.
    public func stop() throws -> StreamReport {
        child.stop(grace: Double(timeoutMs) / 1000 * 2 + 5)
        return try report()
    }

    private func report() throws -> StreamReport {
        let output = child.output
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }) else {
            throw HarnessError("testpod stream printed no report:\n\(output)")
        }
        do {
            return try JSONDecoder().decode(StreamReport.self, from: Data(line.utf8))
        } catch {
            throw HarnessError("cannot read testpod stream's report (\(error)):\n\(output)")
        }
    }
}

/// A running `testpod query` (see `Cluster.startQuery`).
public struct QueryHandle: Sendable {
    public let child: ChildProcess
    let budget: Double

    /// Waits for the query to end and returns its report.
    public func finish() throws -> QueryReport {
        if child.wait(timeout: budget) == nil { child.stop() }
        return try report()
    }

    /// Ends the query now (SIGTERM: the attempts made so far are reported) and returns its report.
    public func stop() throws -> QueryReport {
        child.stop(grace: 10)
        return try report()
    }

    private func report() throws -> QueryReport {
        let output = child.output
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }) else {
            throw HarnessError("testpod query printed no report:\n\(output)")
        }
        do {
            return try JSONDecoder().decode(QueryReport.self, from: Data(line.utf8))
        } catch {
            throw HarnessError("cannot read testpod query's report (\(error)):\n\(output)")
        }
    }
}

extension Cluster {
    /// Times `count` sequential new TCP connections from `ns` to `address:port` with `testpod latency`
    /// (connect → first answer byte) and returns the percentiles.
    public func latency(from ns: Namespace, _ address: String, _ port: UInt16, count: Int,
                        timeoutMs: Int = 1000, samples: Bool = false) throws -> LatencyReport {
        let args = [testpodPath, "latency", "--count", "\(count)", "--timeout-ms", "\(timeoutMs)"]
            + (samples ? ["--samples"] : []) + [Self.target(address, port)]
        let r = try exec(in: ns, args, timeout: Double(count * timeoutMs) / 1000 + 30)
        do {
            return try JSONDecoder().decode(LatencyReport.self, from: Data(r.stdout.utf8))
        } catch {
            throw HarnessError("cannot read testpod latency's report (\(error)):\n\(r)")
        }
    }
}
