import KubeObjects
import Logging
import ServiceTable

/// The controller box of the pipeline: takes object events from the sources, keeps the service
/// table, and hands each data plane the new table plus what changed since it last succeeded.
public actor ProxyController {
    private var builder: TableBuilder
    private let dataPlanes: [any DataPlane]
    private let logger: Logger
    /// Per data plane: the table it last applied and the changes since then.
    private var applied: [ServiceTable?]
    private var pendingDiff: [TableDiff]
    public private(set) var lastSyncError: String?
    public private(set) var syncCount = 0

    public init(nodeName: String, dataPlanes: [any DataPlane], logger: Logger = Logger(label: "kproxy.controller")) {
        self.builder = TableBuilder(nodeName: nodeName)
        self.dataPlanes = dataPlanes
        self.logger = logger
        self.applied = Array(repeating: nil, count: dataPlanes.count)
        self.pendingDiff = Array(repeating: TableDiff(), count: dataPlanes.count)
    }

    /// The latest table (after any pending changes are built).
    public var table: ServiceTable {
        build()
        return builder.table
    }

    /// Applies events from a source; invalid objects are logged with their name and refused.
    /// Returns whether anything is now waiting to be synced.
    @discardableResult
    public func ingest(_ events: [ObjectEvent]) -> Bool {
        for event in events {
            let problems = builder.apply(event)
            if !problems.isEmpty {
                logger.error("refusing invalid object; its last valid version stays in force", metadata: [
                    "object": "\(event.id)",
                    "problems": "\(problems.map(\.description).joined(separator: "; "))",
                ])
            }
        }
        return builder.hasPendingChanges
    }

    private func build() {
        guard builder.hasPendingChanges else { return }
        let (_, diff) = builder.build()
        for i in pendingDiff.indices { pendingDiff[i] = pendingDiff[i].followed(by: diff) }
    }

    /// Builds the table and applies it to every data plane. A data plane that fails is given a
    /// full sync next time; the error is rethrown so the runner backs off and retries.
    public func sync(_ kind: SyncKind) async throws {
        build()
        let table = builder.table
        var firstError: Error?
        for (i, plane) in dataPlanes.enumerated() {
            let full = kind == .full || applied[i] == nil
            if !full && pendingDiff[i].isEmpty && applied[i]?.version == table.version { continue }
            let update = TableUpdate(previous: applied[i], current: table, diff: full ? nil : pendingDiff[i])
            do {
                try await plane.apply(update)
                applied[i] = table
                pendingDiff[i] = TableDiff()
            } catch {
                applied[i] = nil
                logger.error("sync failed; will retry with a full sync", metadata: [
                    "mode": "\(plane.mode)", "error": "\(error)", "tableVersion": "\(table.version)",
                ])
                firstError = firstError ?? error
            }
        }
        syncCount += 1
        if let firstError {
            lastSyncError = "\(firstError)"
            throw firstError
        }
        lastSyncError = nil
    }
}
