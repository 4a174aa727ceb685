import Foundation
import ServiceTable

/// What the controller reports about its syncs, for health checks, metrics and `kproxy status`.
public struct SyncStatus: Sendable, Codable, Equatable {
    /// When the last sync that succeeded for every data plane ended.
    public var lastSuccess: Date?
    /// When the oldest change not yet programmed arrived (nil: nothing pending).
    public var oldestPendingChange: Date?
    /// When a change was last queued.
    public var lastQueued: Date?
    public var lastError: String?
    public var syncs = 0
    public var failures = 0
    public var serviceChanges = 0
    public var endpointChanges = 0
    public var tableVersion: UInt64 = 0
    public var servicePorts = 0

    public init() {}

    /// kube-proxy's healthz rule: unhealthy when a change has waited longer than `timeout` without
    /// a successful sync since (a proxy that has nothing to do is healthy).
    public func isHealthy(now: Date, timeout: TimeInterval) -> Bool {
        guard let pending = oldestPendingChange else { return lastSuccess != nil || syncs == 0 }
        return now.timeIntervalSince(pending) <= timeout
    }
}

/// Receives what happens in the controller; the agent turns it into Prometheus metrics.
public protocol SyncObserver: Sendable {
    func changesQueued(services: Int, endpoints: Int)
    func syncFinished(kind: SyncKind, duration: Duration, success: Bool, table: ServiceTable)
    /// For each change now programmed, how long ago it happened (network programming latency).
    func changesProgrammed(latencies: [TimeInterval])
}
