#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NetworkTypes
import TestpodKit

/// Conveniences for data-plane tests: a manifest folder for `kproxy run --manifests`, waiting for
/// rules to take effect, and looking at the node's kernel state.
extension Cluster {
    /// A folder for the manifests `kproxy run --manifests` reads (created on first use, removed by
    /// `destroy()`).
    public var manifestDirectory: String {
        let dir = "\(workDir)/manifests"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Writes (or replaces, atomically) one manifest file in `manifestDirectory`; returns its path.
    @discardableResult
    public func writeManifest(_ fileName: String, _ text: String) throws -> String {
        let path = "\(manifestDirectory)/\(fileName)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Removes one manifest file from `manifestDirectory`.
    public func removeManifest(_ fileName: String) throws {
        try FileManager.default.removeItem(atPath: "\(manifestDirectory)/\(fileName)")
    }

    /// Starts `kproxy run` in the node for this cluster's manifest folder and node name, plus `extra`
    /// arguments (the mode defaults to nftables).
    public func runKproxy(mode: String = "nftables", extra: [String] = [],
                          environment: [String: String]? = nil) throws -> ChildProcess {
        try runKproxy(["run", "--mode", mode, "--manifests", manifestDirectory,
                       "--hostname-override", options.nodeName] + extra, environment: environment)
    }

    /// Queries repeatedly until `condition` holds for the report (e.g. both pods answered), or throws
    /// after `timeout` seconds with the last report and the cluster's diagnostics. For "the rules are
    /// in place" after starting kproxy or editing a manifest.
    @discardableResult
    public func waitForQuery(from ns: Namespace, _ address: String, _ port: UInt16, _ proto: L4Protocol = .tcp,
                             count: Int = 10, timeoutMs: Int = 500, within timeout: Double = 15,
                             until condition: (QueryReport) -> Bool) throws -> QueryReport {
        let deadline = Date().addingTimeInterval(timeout)
        var last: QueryReport?
        while true {
            let report = try query(from: ns, address, port, proto, count: count, timeoutMs: timeoutMs,
                                   parallel: min(count, 8))
            if condition(report) { return report }
            last = report
            if Date() > deadline { break }
            usleep(100_000)
        }
        throw HarnessError("""
            condition not met within \(timeout) s for \(ns) → \(Cluster.target(address, port))/\(proto.lowercased); \
            last report: \(last.map { "\($0)" } ?? "none")
            \(diagnostics())
            """)
    }

    /// Polls `condition` every 50 ms until it holds or `timeout` seconds pass; returns whether it held.
    public static func waitUntil(timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if try condition() { return true }
            if Date() > deadline { return false }
            usleep(50_000)
        }
    }

    /// `nft list ruleset` in the node (or `ns`).
    public func ruleset(in ns: Namespace? = nil) throws -> String {
        try exec(in: ns ?? node, ["nft", "list", "ruleset"]).stdout
    }

    /// `conntrack -L` in the node (or `ns`): one line per entry.
    public func conntrackEntries(in ns: Namespace? = nil) throws -> [String] {
        let r = try exec(in: ns ?? node, ["conntrack", "-L"], check: false)
        return r.stdout.split(separator: "\n").map(String.init)
    }

    /// The address of a pod, a client or the node for one family, for messages and expectations.
    public func nodeIP(_ family: IPFamily) -> String {
        family == .ipv4 ? AddressPlan.nodeIPv4 : AddressPlan.nodeIPv6
    }
}
