import Testing
import KubeObjects
import ServiceTable
@testable import Controller

/// The controller's contract with data planes: incremental diffs accumulate until applied, and a
/// data plane that failed gets a full sync next. (The data planes themselves are tested against
/// the kernel; this records what the controller hands them.)
struct ProxyControllerTests {
    actor RecordingPlane: DataPlane {
        nonisolated let mode = "recording"
        var updates: [TableUpdate] = []
        var failNext = false
        func apply(_ update: TableUpdate) async throws {
            updates.append(update)
            if failNext {
                failNext = false
                throw CancellationError()
            }
        }
        func cleanup() async throws {}
        func setFailNext() { failNext = true }
    }

    @Test func incrementalDiffsAccumulateAndFailuresForceAFullSync() async throws {
        let plane = RecordingPlane()
        let controller = ProxyController(nodeName: "node-a", dataPlanes: [plane])
        await controller.ingest([.upsert(.service(Make.service("web")))])
        try await controller.sync(.incremental)
        var updates = await plane.updates
        #expect(updates.count == 1)
        #expect(updates[0].isFullSync, "the first sync is always full")

        await controller.ingest([.upsert(.service(Make.service("api", ip: "10.96.0.11")))])
        try await controller.sync(.incremental)
        updates = await plane.updates
        #expect(updates.last?.isFullSync == false)
        #expect(updates.last?.diff?.added.map(\.name) == ["api"])

        // A failing apply: the error propagates and the next sync is full.
        await controller.ingest([.delete(ObjectID(kind: .service, name: NamespacedName(namespace: "default", name: "web")))])
        await plane.setFailNext()
        await #expect(throws: (any Error).self) { try await controller.sync(.incremental) }
        try await controller.sync(.incremental)
        updates = await plane.updates
        #expect(updates.last?.isFullSync == true)
        #expect(updates.last?.current.count == 1)
        #expect(await controller.lastSyncError == nil)

        // Nothing changed: an incremental sync does not bother the data plane.
        try await controller.sync(.incremental)
        #expect(await plane.updates.count == updates.count)
    }
}
