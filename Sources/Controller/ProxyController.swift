import Foundation
import KubeObjects
import Logging
import ServiceTable

/// The controller box of the pipeline: takes object events from the sources, keeps the service
/// table, and hands each data plane the new table plus what changed since it last succeeded.
public actor ProxyController {
    private var builder: TableBuilder
    private let dataPlanes: [any DataPlane]
    private let logger: Logger
    /// Per data plane, and last for the observer: the table it last took and the changes since then.
    private var applied: [ServiceTable?]
    private var pendingDiff: [TableDiff]
    public private(set) var status = SyncStatus()
    public var lastSyncError: String? { status.lastError }
    private let observer: (any SyncObserver)?
    /// When each change not yet programmed happened (bounded), for network programming latency.
    private var pendingChangeTimes: [Date] = []

    public init(nodeName: String, dataPlanes: [any DataPlane], observer: (any SyncObserver)? = nil,
                logger: Logger = Logger(label: "kproxy.controller")) {
        self.builder = TableBuilder(nodeName: nodeName)
        self.dataPlanes = dataPlanes
        self.observer = observer
        self.logger = logger
        self.applied = Array(repeating: nil, count: dataPlanes.count + 1)
        self.pendingDiff = Array(repeating: TableDiff(), count: dataPlanes.count + 1)
    }

    /// The latest table (after any pending changes are built).
    public var table: ServiceTable {
        build()
        return builder.table
    }

    /// Applies events from a source; invalid objects are logged with their name and refused.
    /// Returns whether anything is now waiting to be synced.
    @discardableResult
    public func ingest(_ events: [ObjectEvent], at now: Date = Date()) -> Bool {
        var services = 0, endpoints = 0
        for event in events {
            switch event.id.kind {
            case .service: services += 1
            case .endpointSlice: endpoints += 1
            case .node: break
            }
            if pendingChangeTimes.count < 10_000 { pendingChangeTimes.append(Self.triggerTime(event) ?? now) }
            if case .upsert(.service(let svc)) = event, let reason = TableBuilder.skipReason(svc),
               reason.hasPrefix("no cluster IP") {
                logger.warning("service skipped", metadata: ["service": "\(svc.id)", "reason": "\(reason)"])
            }
            let problems = builder.apply(event)
            if !problems.isEmpty {
                logger.error("refusing invalid object; its last valid version stays in force", metadata: [
                    "object": "\(event.id)",
                    "problems": "\(problems.map(\.description).joined(separator: "; "))",
                ])
            }
        }
        status.serviceChanges += services
        status.endpointChanges += endpoints
        if !events.isEmpty {
            status.lastQueued = now
            if status.oldestPendingChange == nil { status.oldestPendingChange = now }
            observer?.changesQueued(services: services, endpoints: endpoints)
        }
        return builder.hasPendingChanges
    }

    /// When the change behind an event happened, if the object says (the EndpointSlice controller's
    /// `endpoints.kubernetes.io/last-change-trigger-time` annotation).
    static func triggerTime(_ event: ObjectEvent) -> Date? {
        guard case .upsert(.endpointSlice(let slice)) = event,
              let text = slice.metadata.annotations?["endpoints.kubernetes.io/last-change-trigger-time"] else { return nil }
        return parseTime(text)
    }

    /// RFC 3339 with or without fractional seconds (the EndpointSlice controller writes whole
    /// seconds; finer stamps give finer latencies, e.g. in `kproxy bench programming`).
    static func parseTime(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        if let d = formatter.date(from: text) { return d }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }

    private func build() {
        guard builder.hasPendingChanges else { return }
        let (_, diff) = builder.build()
        for i in pendingDiff.indices { pendingDiff[i] = pendingDiff[i].followed(by: diff) }
    }

    /// The update that takes consumer `i` (a data plane, or the observer last) to `table`.
    private func update(for i: Int, to table: ServiceTable, _ kind: SyncKind) -> TableUpdate {
        let full = kind == .full || applied[i] == nil
        return TableUpdate(previous: applied[i], current: table, diff: full ? nil : pendingDiff[i])
    }

    private func took(_ i: Int, _ table: ServiceTable?) {
        applied[i] = table
        pendingDiff[i] = TableDiff()
    }

    /// Builds the table and applies it to every data plane. A data plane that fails is given a
    /// full sync next time; the error is rethrown so the runner backs off and retries. Returns
    /// how many object changes it programmed and where its time went.
    @discardableResult
    public func sync(_ kind: SyncKind) async throws -> SyncReport {
        let clock = ContinuousClock()
        let started = clock.now
        let startedAt = Date()
        let programmedChanges = pendingChangeTimes
        pendingChangeTimes.removeAll()
        build()
        let table = builder.table
        var report = SyncReport(tableVersion: table.version, servicePorts: table.count,
                                changes: programmedChanges.count, build: clock.now - started)
        var firstError: Error?
        for (i, plane) in dataPlanes.enumerated() {
            let update = update(for: i, to: table, kind)
            if !update.isFullSync && pendingDiff[i].isEmpty && applied[i]?.version == table.version { continue }
            let planeStarted = clock.now
            do {
                try await plane.apply(update)
                took(i, table)
            } catch {
                took(i, nil)
                logger.error("sync failed; will retry with a full sync", metadata: [
                    "mode": "\(plane.mode)", "error": "\(error)", "tableVersion": "\(table.version)",
                ])
                firstError = firstError ?? error
            }
            report.dataPlanes.append((plane.mode, clock.now - planeStarted))
        }
        status.syncs += 1
        status.tableVersion = table.version
        status.servicePorts = table.count
        if let observer {
            let observing = clock.now
            let o = dataPlanes.count
            let update = update(for: o, to: table, kind)
            observer.syncFinished(kind: kind, duration: observing - started, success: firstError == nil, update: update)
            // The observer saw this table whatever the data planes did.
            took(o, table)
            report.observer = clock.now - observing
        }
        if let firstError {
            status.failures += 1
            status.lastError = "\(firstError)"
            pendingChangeTimes = programmedChanges + pendingChangeTimes
            throw firstError
        }
        let now = Date()
        status.lastError = nil
        status.lastSuccess = now
        // Changes that arrived while this sync ran are still pending.
        status.oldestPendingChange = status.lastQueued.flatMap { $0 > startedAt ? $0 : nil }
        if !programmedChanges.isEmpty {
            observer?.changesProgrammed(latencies: programmedChanges.map { max(0, now.timeIntervalSince($0)) })
        }
        return report
    }
}
