import Controller
import Foundation
import Prometheus
import ServiceTable

/// kube-proxy's Prometheus metrics, with kube-proxy's names and buckets, so existing dashboards and
/// alerts keep working.
public final class ProxyMetrics: SyncObserver, Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let syncDuration: DurationHistogram
    private let fullSyncDuration: DurationHistogram
    private let partialSyncDuration: DurationHistogram
    private let lastSyncTimestamp: Gauge
    private let lastQueuedTimestamp: Gauge
    private let programmingDuration: DurationHistogram
    private let endpointChangesTotal: Counter
    private let serviceChangesTotal: Counter
    private let endpointChangesPending: Gauge
    private let serviceChangesPending: Gauge
    private let syncFailures: Counter
    private let noLocalEndpointsInternal: Gauge
    private let noLocalEndpointsExternal: Gauge
    private let pending = Pending()
    private let noLocal = NoLocalEndpoints()

    private final class Pending: @unchecked Sendable {
        let lock = NSLock()
        var services = 0
        var endpoints = 0
    }

    /// Services with a Local traffic policy and endpoints, none of them on this node: per policy,
    /// how many of each service's ports are so. Follows the table's diffs, so a sync that changes
    /// one service costs one service's work here too.
    final class NoLocalEndpoints: @unchecked Sendable {
        private let lock = NSLock()
        private var internalPorts: [String: Int] = [:]
        private var externalPorts: [String: Int] = [:]

        /// The numbers of services (internal, external) after `update`.
        func follow(_ update: TableUpdate) -> (internal: Int, external: Int) {
            lock.withLock {
                if let changes = update.changedEntries {
                    for (before, after) in changes {
                        if let before { count(before, -1) }
                        if let after { count(after, 1) }
                    }
                } else {
                    internalPorts.removeAll(keepingCapacity: true)
                    externalPorts.removeAll(keepingCapacity: true)
                    for entry in update.current.entries.values { count(entry, 1) }
                }
                return (internalPorts.count, externalPorts.count)
            }
        }

        private func count(_ entry: ServicePortEntry, _ delta: Int) {
            guard entry.hasEndpoints && entry.localEndpoints.isEmpty else { return }
            let service = entry.name.serviceName
            if entry.internalPolicyIsLocal { Self.add(delta, service, &internalPorts) }
            if entry.externalPolicyIsLocal { Self.add(delta, service, &externalPorts) }
        }

        private static func add(_ delta: Int, _ service: String, _ ports: inout [String: Int]) {
            let n = ports[service, default: 0] + delta
            ports[service] = n > 0 ? n : nil
        }
    }

    public init(mode: String) {
        // metrics.ExponentialBuckets(0.001, 2, 15), as kube-proxy.
        let syncBuckets = (0..<15).map { Duration.microseconds(1000 << $0) }
        // 0.25 s, 0.5 s, 1…59 s, 60…115 s by 5, 120…300 s by 30, as kube-proxy.
        let programmingBuckets: [Duration] = [.milliseconds(250), .milliseconds(500)]
            + (1...59).map { .seconds($0) } + (0..<12).map { .seconds(60 + 5 * $0) } + (0..<7).map { .seconds(120 + 30 * $0) }
        syncDuration = registry.makeDurationHistogram(name: "kubeproxy_sync_proxy_rules_duration_seconds", buckets: syncBuckets,
                                                      help: "SyncProxyRules latency in seconds")
        fullSyncDuration = registry.makeDurationHistogram(name: "kubeproxy_sync_full_proxy_rules_duration_seconds", buckets: syncBuckets,
                                                          help: "SyncProxyRules latency in seconds for full resyncs")
        partialSyncDuration = registry.makeDurationHistogram(name: "kubeproxy_sync_partial_proxy_rules_duration_seconds", buckets: syncBuckets,
                                                             help: "SyncProxyRules latency in seconds for partial resyncs")
        lastSyncTimestamp = registry.makeGauge(name: "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                                               help: "The last time proxy rules were successfully synced")
        lastQueuedTimestamp = registry.makeGauge(name: "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                                                 help: "The last time a sync of proxy rules was queued")
        programmingDuration = registry.makeDurationHistogram(name: "kubeproxy_network_programming_duration_seconds",
                                                             buckets: programmingBuckets,
                                                             help: "In Cluster Network Programming Latency in seconds")
        endpointChangesTotal = registry.makeCounter(name: "kubeproxy_sync_proxy_rules_endpoint_changes_total",
                                                    help: "Cumulative proxy rules Endpoint changes")
        serviceChangesTotal = registry.makeCounter(name: "kubeproxy_sync_proxy_rules_service_changes_total",
                                                   help: "Cumulative proxy rules Service changes")
        endpointChangesPending = registry.makeGauge(name: "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
                                                    help: "Pending proxy rules Endpoint changes")
        serviceChangesPending = registry.makeGauge(name: "kubeproxy_sync_proxy_rules_service_changes_pending",
                                                   help: "Pending proxy rules Service changes")
        let failureName = mode == "iptables" ? "kubeproxy_sync_proxy_rules_iptables_restore_failures_total"
            : "kubeproxy_sync_proxy_rules_\(mode)_sync_failures_total"
        syncFailures = registry.makeCounter(name: failureName, help: "Cumulative proxy \(mode) sync failures")
        noLocalEndpointsInternal = registry.makeGauge(name: "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                                                      labels: [("traffic_policy", "internal")],
                                                      help: "Number of services with a Local traffic policy and no endpoints")
        noLocalEndpointsExternal = registry.makeGauge(name: "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                                                      labels: [("traffic_policy", "external")],
                                                      help: "Number of services with a Local traffic policy and no endpoints")
    }

    public func changesQueued(services: Int, endpoints: Int) {
        serviceChangesTotal.increment(by: Int64(services))
        endpointChangesTotal.increment(by: Int64(endpoints))
        let (s, e) = pending.lock.withLock {
            pending.services += services
            pending.endpoints += endpoints
            return (pending.services, pending.endpoints)
        }
        serviceChangesPending.set(Double(s))
        endpointChangesPending.set(Double(e))
        lastQueuedTimestamp.set(Date().timeIntervalSince1970)
    }

    public func syncFinished(kind: SyncKind, duration: Duration, success: Bool, update: TableUpdate) {
        syncDuration.record(duration)
        (kind == .full ? fullSyncDuration : partialSyncDuration).record(duration)
        // The table's own figures, whether or not the data planes took it.
        let (internalNoLocal, externalNoLocal) = noLocal.follow(update)
        noLocalEndpointsInternal.set(Double(internalNoLocal))
        noLocalEndpointsExternal.set(Double(externalNoLocal))
        guard success else {
            syncFailures.increment()
            return
        }
        pending.lock.withLock {
            pending.services = 0
            pending.endpoints = 0
        }
        serviceChangesPending.set(Double(0))
        endpointChangesPending.set(Double(0))
        lastSyncTimestamp.set(Date().timeIntervalSince1970)
    }

    public func changesProgrammed(latencies: [TimeInterval]) {
        for l in latencies { programmingDuration.record(.milliseconds(Int64(l * 1000))) }
    }

    /// A counter for kube-proxy's `kubeproxy_proxy_healthz_total` / `kubeproxy_proxy_livez_total`.
    func probeCounter(_ name: String, code: Int) -> Counter {
        registry.makeCounter(name: name, labels: [("code", String(code))], help: "Cumulative proxy healthz/livez HTTP status")
    }

    /// The Prometheus text exposition.
    public func render() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
