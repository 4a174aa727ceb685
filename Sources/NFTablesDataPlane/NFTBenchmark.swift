import Foundation
import NetworkTypes
import ServiceTable

/// Sync timings of the nftables data plane on synthetic tables, run in a scratch network
/// namespace (created and deleted here). Reusable by a `kproxy bench` command.
public enum NFTBenchmark {
    public struct Result: Sendable, CustomStringConvertible {
        public var services: Int
        public var endpoints: Int
        /// Empty → programmed, one transaction.
        public var fullSync: NFTSyncStats
        /// Wall-clock seconds of that whole apply (render + libnftables + kernel).
        public var fullSyncSeconds: Double
        /// A second full sync over the loaded ruleset (periodic resync / restart adoption).
        public var resyncSeconds: Double
        public var resync: NFTSyncStats
        /// One service's endpoint replaced, incremental: median wall-clock seconds over repeats.
        public var oneServiceUpdateSeconds: Double
        public var oneServiceUpdate: NFTSyncStats
        /// One service scaled by one endpoint, up and back down in turn (its dispatch chain changes:
        /// up, a dispatch chain and a pick chain with its map are created; down, deleted): median
        /// wall-clock seconds over repeats.
        public var oneServiceScaleSeconds: Double
        public var oneServiceScale: NFTSyncStats
        /// A new service with as many endpoints added, then removed again, in turn: median
        /// wall-clock seconds over repeats.
        public var serviceAddRemoveSeconds: Double
        /// One endpoint of each of 1,000 services (or all, if fewer) replaced in one incremental step.
        public var bulkUpdateSeconds: Double
        public var bulkUpdate: NFTSyncStats
        /// `cleanup()` of the programmed tables.
        public var cleanupSeconds: Double

        public var description: String {
            String(format: "%6d services × %d endpoints: full sync %.3f s (render %.3f, kernel %.3f, %.1f MB), resync %.3f s, one-service update %.2f ms (%d B), scale ±1 %.2f ms, service added/removed %.2f ms, %d-service update %.1f ms, cleanup %.2f s",
                   services, endpoints, fullSyncSeconds, fullSync.renderSeconds, fullSync.kernelSeconds,
                   Double(fullSync.bytes) / 1e6, resyncSeconds, oneServiceUpdateSeconds * 1000, oneServiceUpdate.bytes,
                   oneServiceScaleSeconds * 1000, serviceAddRemoveSeconds * 1000, min(services, 1_000), bulkUpdateSeconds * 1000, cleanupSeconds)
                + [fullSync.replacedBecause, resync.replacedBecause].compactMap { $0.map { " (replaced: \($0))" } }.joined()
        }
    }

    /// ClusterIP TCP services `svc-N` on 10.96.0.0/12 (port 80) with endpoints on 10.128.0.0/9 (8080).
    public static func syntheticEntries(count: Int, endpoints: Int, endpointShift: Int = 0) -> [ServicePortEntry] {
        (0..<count).map { syntheticEntry($0, endpoints: endpoints, endpointShift: endpointShift) }
    }

    /// Service `svc-i` of `syntheticEntries`.
    static func syntheticEntry(_ i: Int, endpoints: Int, endpointShift: Int = 0) -> ServicePortEntry {
        let ip = IPAddress.v4(0x0A60_0000 + UInt32(i + 1))
        let eps = (0..<endpoints).map { j in
            Endpoint(ip: .v4(0x0A80_0000 + UInt32(i * endpoints + j + endpointShift)), port: 8080)
        }
        return ServicePortEntry(
            name: ServicePortName(namespace: "bench", name: "svc-\(i)", port: "", protocol: .tcp),
            clusterIPs: [ip], port: 80, endpoints: eps, clusterEndpoints: eps)
    }

    /// Runs the measurements for each size in a fresh namespace `kpbench-<pid>`.
    public static func run(sizes: [Int], endpoints: Int = 5, updates: Int = 9) async throws -> [Result] {
        var results: [Result] = []
        for n in sizes {
            let ns = "kpbench-\(getpid())-\(n)"
            _ = shell("ip netns del \(ns) 2>/dev/null; ip netns add \(ns)")
            defer { _ = shell("ip netns del \(ns)") }
            let plane = try NFTablesDataPlane(families: [.ipv4], netnsPath: "/run/netns/\(ns)", conntrackCleanup: false)
            let node = NodeInfo(name: "bench")
            let table = ServiceTable(version: 1, node: node, entries: syntheticEntries(count: n, endpoints: endpoints))
            let clock = ContinuousClock()
            var t = clock.now
            try await plane.apply(TableUpdate(previous: nil, current: table, diff: nil))
            let full = seconds(clock.now - t)
            let fullStats = await plane.lastSyncStats
            t = clock.now
            try await plane.apply(TableUpdate(previous: nil, current: table, diff: nil))
            let resync = seconds(clock.now - t)
            let resyncStats = await plane.lastSyncStats

            var previous = table
            // `updates` incremental steps on the service in the middle, each editing its endpoint
            // list; the median wall-clock seconds and the last step's statistics.
            func timedUpdates(_ edit: (inout [Endpoint], Int) -> Void) async throws -> (Double, NFTSyncStats) {
                var times: [Double] = []
                var stats = NFTSyncStats(kind: .unchanged)
                let name = ServicePortName(namespace: "bench", name: "svc-\(n / 2)", port: "", protocol: .tcp)
                for k in 0..<updates {
                    var e = previous[name]!
                    edit(&e.clusterEndpoints, k)
                    e.endpoints = e.clusterEndpoints
                    var entries = previous.entries
                    entries[name] = e
                    let next = ServiceTable(version: previous.version + 1, node: node, entries: entries)
                    let t = clock.now
                    try await plane.apply(TableUpdate(previous: previous, current: next, diff: TableDiff(changed: [name])))
                    times.append(seconds(clock.now - t))
                    stats = await plane.lastSyncStats
                    previous = next
                }
                return (times.sorted()[times.count / 2], stats)
            }
            // Its last endpoint moves to a fresh address.
            let (updateSeconds, stats) = try await timedUpdates { eps, k in eps[eps.count - 1].ip = .v4(0x0B00_0000 + UInt32(k + 1)) }
            // It gains an endpoint, then loses it again, in turn.
            let (scaleSeconds, scaleStats) = try await timedUpdates { eps, k in
                if k % 2 == 0 { eps.append(Endpoint(ip: .v4(0x0B10_0000 + UInt32(k + 1)), port: 8080)) } else { eps.removeLast() }
            }
            // A new service comes, then goes, in turn.
            var addRemoveTimes: [Double] = []
            let extra = syntheticEntry(n, endpoints: endpoints, endpointShift: 0x0010_0000)
            for k in 0..<updates {
                var entries = previous.entries
                entries[extra.name] = k % 2 == 0 ? extra : nil
                let next = ServiceTable(version: previous.version + 1, node: node, entries: entries)
                let diff = k % 2 == 0 ? TableDiff(added: [extra.name]) : TableDiff(removed: [extra.name])
                let t = clock.now
                try await plane.apply(TableUpdate(previous: previous, current: next, diff: diff))
                addRemoveTimes.append(seconds(clock.now - t))
                previous = next
            }
            let addRemoveSeconds = addRemoveTimes.sorted()[addRemoveTimes.count / 2]

            // 1,000 services at once: the first endpoint of each moves.
            var entries = previous.entries
            var changed = Set<ServicePortName>()
            for i in stride(from: 0, to: n, by: max(1, n / 1_000)).prefix(1_000) {
                let name = ServicePortName(namespace: "bench", name: "svc-\(i)", port: "", protocol: .tcp)
                var e = entries[name]!
                e.clusterEndpoints[0].ip = .v4(0x0C00_0000 + UInt32(i))
                e.endpoints = e.clusterEndpoints
                entries[name] = e
                changed.insert(name)
            }
            let bulk = ServiceTable(version: previous.version + 1, node: node, entries: entries)
            t = clock.now
            try await plane.apply(TableUpdate(previous: previous, current: bulk, diff: TableDiff(changed: changed)))
            let bulkSeconds = seconds(clock.now - t)
            let bulkStats = await plane.lastSyncStats

            t = clock.now
            try await plane.cleanup()
            let cleanupSeconds = seconds(clock.now - t)
            results.append(Result(services: n, endpoints: endpoints, fullSync: fullStats, fullSyncSeconds: full,
                                  resyncSeconds: resync, resync: resyncStats, oneServiceUpdateSeconds: updateSeconds,
                                  oneServiceUpdate: stats, oneServiceScaleSeconds: scaleSeconds,
                                  oneServiceScale: scaleStats, serviceAddRemoveSeconds: addRemoveSeconds,
                                  bulkUpdateSeconds: bulkSeconds, bulkUpdate: bulkStats,
                                  cleanupSeconds: cleanupSeconds))
        }
        return results
    }

    private static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    private static func shell(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        do { try p.run() } catch { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
