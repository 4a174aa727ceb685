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

/// What one sync did: how many object changes it programmed (counted up to 10,000) and where its
/// time went (building the table, each data plane, the observer), for the agent's debug log.
public struct SyncReport: Sendable {
    /// The table this sync programmed.
    public var tableVersion: UInt64
    public var servicePorts: Int
    public var changes: Int
    public var build: Duration
    public var dataPlanes: [(mode: String, duration: Duration)] = []
    public var observer: Duration = .zero

    public init(tableVersion: UInt64, servicePorts: Int, changes: Int, build: Duration) {
        self.tableVersion = tableVersion
        self.servicePorts = servicePorts
        self.changes = changes
        self.build = build
    }
}

/// Receives what happens in the controller; the agent turns it into Prometheus metrics.
public protocol SyncObserver: Sendable {
    func changesQueued(services: Int, endpoints: Int)
    /// After every sync, with the table it reached and what changed since the observer last saw
    /// one (so it can follow the table in proportion to the change, like a data plane); a full
    /// sync, or the first, has no diff.
    func syncFinished(kind: SyncKind, duration: Duration, success: Bool, update: TableUpdate)
    /// For each change now programmed, how long ago it happened (network programming latency).
    func changesProgrammed(latencies: [TimeInterval])
}
