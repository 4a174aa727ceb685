import Foundation
import Testing
import Controller

/// kube-proxy's healthz rule, decided from the controller's status.
struct SyncStatusTests {
    let now = Date(timeIntervalSince1970: 1_000_000)

    @Test func healthyBeforeAnyChangeAndAfterSuccess() {
        var s = SyncStatus()
        #expect(s.isHealthy(now: now, timeout: 60))
        s.syncs = 1
        s.lastSuccess = now.addingTimeInterval(-500)
        #expect(s.isHealthy(now: now, timeout: 60), "nothing pending: an old sync is fine")
    }

    @Test func unhealthyWhenAChangeWaitsLongerThanTheTimeout() {
        var s = SyncStatus()
        s.syncs = 3
        s.lastSuccess = now.addingTimeInterval(-100)
        s.oldestPendingChange = now.addingTimeInterval(-30)
        #expect(s.isHealthy(now: now, timeout: 60))
        s.oldestPendingChange = now.addingTimeInterval(-61)
        #expect(!s.isHealthy(now: now, timeout: 60))
    }
}
