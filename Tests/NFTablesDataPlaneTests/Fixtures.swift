import Foundation
import Testing
import NetworkTypes
import ServiceTable
@testable import NFTablesDataPlane

/// Builders for small service tables.
enum Fixture {
    static let node = NodeInfo(name: "node-a", addresses: [IPAddress("192.168.50.1")!])

    static func ep(_ ip: String, _ port: UInt16 = 8080, local: Bool = false) -> Endpoint {
        Endpoint(ip: IPAddress(ip)!, port: port, isLocal: local)
    }

    static func service(_ name: String, ip: String..., port: UInt16 = 80, proto: L4Protocol = .tcp,
                        portName: String = "", endpoints: [Endpoint] = [], type: ServiceKind = .clusterIP,
                        nodePort: UInt16? = nil, externalIPs: [String] = [], lbIPs: [String] = [],
                        sourceRanges: [String] = [], affinity: Int? = nil, externalPolicy: Policy = .cluster,
                        internalPolicy: Policy = .cluster) -> ServicePortEntry {
        let local = endpoints.filter(\.isLocal)
        var e = ServicePortEntry(
            name: ServicePortName(namespace: "default", name: name, port: portName, protocol: proto),
            type: type, clusterIPs: ip.map { IPAddress($0)! }, port: port, nodePort: nodePort,
            externalIPs: externalIPs.map { IPAddress($0)! }, loadBalancerIPs: lbIPs.map { IPAddress($0)! },
            loadBalancerSourceRanges: sourceRanges.map { CIDR($0)! }, sessionAffinityTimeout: affinity,
            externalTrafficPolicy: externalPolicy, internalTrafficPolicy: internalPolicy,
            endpoints: endpoints, clusterEndpoints: endpoints, localEndpoints: [])
        if e.internalPolicyIsLocal || e.externalPolicyIsLocal { e.localEndpoints = local }
        return e
    }

    static func table(_ entries: [ServicePortEntry], version: UInt64 = 1) -> ServiceTable {
        ServiceTable(version: version, node: node, entries: entries)
    }

    /// `count` ClusterIP services with `endpoints` endpoints each, addresses spread over 10.96/12
    /// (services) and 10.128/9 (endpoints): the benchmark's table.
    static func synthetic(count: Int, endpoints: Int, version: UInt64 = 1) -> ServiceTable {
        ServiceTable(version: version, node: node, entries: NFTBenchmark.syntheticEntries(count: count, endpoints: endpoints))
    }
}

/// Runs a command, returning its exit status and combined output.
@discardableResult
func sh(_ command: String) -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    do { try p.run() } catch { return (-1, "\(error)") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Whether this process may create network namespaces and program nftables in them (root with
/// CAP_NET_ADMIN and CAP_SYS_ADMIN; a restricted container's root may not). Probed once.
let canUseNetns: Bool = {
    guard getuid() == 0 else { return false }
    let probe = "kpt-\(getpid())-probe"
    defer { sh("ip netns del \(probe) 2>/dev/null") }
    return sh("ip netns add \(probe) && ip netns exec \(probe) nft list ruleset").status == 0
}()

let netnsSkipReason: Comment = "needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN (network namespaces, nftables)"

/// Network namespaces for one test, named `kpt-<pid>-<random>-<suffix>`; all deleted by `destroy()`
/// (call it in a `defer`), which also ends processes the test started inside them.
final class Namespaces: @unchecked Sendable {
    let prefix: String
    private(set) var names: [String] = []
    private var processes: [Process] = []

    init() {
        prefix = "kpt-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))-"
        _ = Self.sweep
    }

    /// A test process that crashed could not clean up: once per run, namespaces `kpt-<pid>-…` of
    /// processes that no longer exist are deleted, with the servers those tests left in them.
    static let sweep: Void = {
        for line in sh("ip netns list").output.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            let parts = name.split(separator: "-")
            guard parts.count >= 3, parts[0] == "kpt", let pid = Int32(parts[1]), pid != getpid(),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            for p in sh("ip netns pids \(name)").output.split(separator: "\n").compactMap({ Int32($0) }) {
                kill(p, SIGKILL)
            }
            sh("ip netns del \(name)")
        }
    }()

    /// Creates a namespace with loopback up; returns its full name.
    @discardableResult
    func create(_ suffix: String) throws -> String {
        let name = prefix + suffix
        let r = sh("ip netns add \(name) && ip -n \(name) link set lo up")
        guard r.status == 0 else { throw TestFailure("ip netns add \(name): \(r.output)") }
        names.append(name)
        return name
    }

    func path(_ name: String) -> String { "/run/netns/\(name)" }

    /// Runs a command inside a namespace.
    @discardableResult
    func exec(_ name: String, _ command: String) -> (status: Int32, output: String) {
        sh("ip netns exec \(name) sh -c '\(command.replacingOccurrences(of: "'", with: "'\\''"))'")
    }

    /// Starts a long-running command in a namespace in the background; it is killed by `destroy()`.
    func spawn(_ name: String, _ command: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        p.arguments = ["netns", "exec", name, "sh", "-c", "exec \(command)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        processes.append(p)
    }

    func destroy() {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for p in processes { p.waitUntilExit() }
        processes = []
        for n in names.reversed() { sh("ip netns del \(n)") }
        names = []
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
