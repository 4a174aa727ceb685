import Testing
@testable import Controller

/// The runner's decisions, with time given explicitly.
struct SyncScheduleTests {
    var schedule = SyncSchedule(minInterval: .seconds(1), fullSyncInterval: .seconds(30),
                                retryInitial: .milliseconds(500), retryMax: .seconds(4))

    @Test mutating func firstSyncIsFullAndImmediate() {
        #expect(schedule.next() == (.zero, .full))
    }

    @Test mutating func aBurstOfRequestsIsCoalescedIntoOneSyncAfterMinInterval() {
        schedule.started(.full, at: .seconds(10))
        schedule.finished(success: true, at: .seconds(10))
        for _ in 0..<100 { schedule.request() }
        // Requests arriving right after a sync wait for the minimum interval, then run once.
        #expect(schedule.next() == (.seconds(11), .incremental))
        schedule.started(.incremental, at: .seconds(11))
        schedule.finished(success: true, at: .seconds(11))
        // Nothing pending any more: the next thing due is the periodic full sync.
        #expect(schedule.next() == (.seconds(40), .full))
    }

    @Test mutating func aRequestDuringASyncNeedsAnotherSync() {
        schedule.started(.full, at: .seconds(1))
        schedule.request()
        schedule.finished(success: true, at: .seconds(1.2))
        #expect(schedule.next() == (.seconds(2), .incremental))
    }

    @Test mutating func periodicFullSyncRepairsDriftEvenWithoutChanges() {
        schedule.started(.full, at: .zero)
        schedule.finished(success: true, at: .zero)
        #expect(schedule.next() == (.seconds(30), .full))
        schedule.started(.incremental, at: .seconds(29.5))
        schedule.finished(success: true, at: .seconds(29.5))
        // An incremental sync does not postpone the full one, but min interval still holds.
        #expect(schedule.next() == (.seconds(30.5), .full))
    }

    @Test mutating func aPendingRequestDueAfterThePeriodicSyncBecomesTheFullSync() {
        schedule.started(.full, at: .zero)
        schedule.finished(success: true, at: .zero)
        schedule.started(.incremental, at: .seconds(29.8))
        schedule.finished(success: true, at: .seconds(29.8))
        schedule.request()
        #expect(schedule.next() == (.seconds(30.8), .full))
    }

    @Test mutating func failuresAreRetriedAsFullSyncsWithExponentialBackoff() {
        schedule.started(.full, at: .zero)
        schedule.finished(success: true, at: .zero)
        schedule.request()
        var now = Duration.seconds(1)
        var waits: [Duration] = []
        for _ in 0..<6 {
            schedule.started(schedule.next().kind, at: now)
            schedule.finished(success: false, at: now)
            let (at, kind) = schedule.next()
            #expect(kind == .full)
            waits.append(at - now)
            now = at
        }
        // The backoff doubles (never below the min interval of 1 s) and is capped at 4 s.
        #expect(waits == [.seconds(1), .seconds(1), .seconds(2), .seconds(4), .seconds(4), .seconds(4)])
        #expect(schedule.consecutiveFailures == 6)
        schedule.started(.full, at: now)
        schedule.finished(success: true, at: now)
        #expect(schedule.consecutiveFailures == 0)
        #expect(schedule.next() == (now + .seconds(30), .full))
    }

    @Test func backoffSequence() {
        let s = SyncSchedule(minInterval: .zero, retryInitial: .milliseconds(100), retryMax: .seconds(1))
        #expect((1...6).map { s.backoff($0) } ==
                [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
    }
}

/// The runner on a real clock: behaviour, with generous bounds (no speed assertions).
struct SyncRunnerTests {
    actor Recorder {
        var kinds: [SyncKind] = []
        var failuresLeft: Int
        init(failures: Int = 0) { failuresLeft = failures }
        func record(_ k: SyncKind) throws {
            kinds.append(k)
            if failuresLeft > 0 {
                failuresLeft -= 1
                throw CancellationError()
            }
        }
    }

    func waitFor(_ condition: @Sendable () async -> Bool) async {
        for _ in 0..<500 {
            if await condition() { return }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func burstOfRequestsCoalesces() async {
        let rec = Recorder()
        let runner = SyncRunner(schedule: SyncSchedule(minInterval: .milliseconds(300), fullSyncInterval: .seconds(60))) {
            try await rec.record($0)
        }
        let task = Task { await runner.run() }
        await waitFor { await rec.kinds.count == 1 }
        for _ in 0..<200 { await runner.requestSync() }
        await waitFor { await rec.kinds.count >= 2 }
        try? await Task.sleep(for: .milliseconds(700))
        task.cancel()
        await task.value
        let kinds = await rec.kinds
        // One initial full sync, then the whole burst handled by a single incremental sync.
        #expect(kinds == [.full, .incremental])
    }

    @Test func failedSyncIsRetriedAsFullUntilItSucceeds() async {
        let rec = Recorder(failures: 3)
        let runner = SyncRunner(schedule: SyncSchedule(minInterval: .milliseconds(10), fullSyncInterval: .seconds(60),
                                                       retryInitial: .milliseconds(20), retryMax: .milliseconds(80))) {
            try await rec.record($0)
        }
        let task = Task { await runner.run() }
        await waitFor { await rec.kinds.count >= 4 }
        task.cancel()
        await task.value
        #expect(await rec.kinds.prefix(4) == [.full, .full, .full, .full])
        #expect(await runner.consecutiveFailures == 0)
    }

    @Test func periodicFullSyncsRunWithoutRequests() async {
        let rec = Recorder()
        let runner = SyncRunner(schedule: SyncSchedule(minInterval: .milliseconds(10), fullSyncInterval: .milliseconds(100))) {
            try await rec.record($0)
        }
        let task = Task { await runner.run() }
        await waitFor { await rec.kinds.count >= 3 }
        task.cancel()
        await task.value
        let kinds = await rec.kinds
        #expect(kinds.count >= 3)
        #expect(kinds.allSatisfy { $0 == .full })
    }
}
