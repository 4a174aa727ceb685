/// Runs syncs on the schedule of a `SyncSchedule`, on a real clock: coalesces bursts of requests,
/// runs periodic full syncs, and retries failures with backoff. One sync runs at a time.
public actor SyncRunner {
    public typealias SyncFunction = @Sendable (SyncKind) async throws -> Void

    private var schedule: SyncSchedule
    private let sync: SyncFunction
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    private var waiter: CheckedContinuation<Void, Never>?
    private var timer: Task<Void, Never>?
    public private(set) var completed: [(kind: SyncKind, success: Bool)] = []
    private let keepHistory: Int

    public init(schedule: SyncSchedule, keepHistory: Int = 64, sync: @escaping SyncFunction) {
        self.schedule = schedule
        self.sync = sync
        self.origin = clock.now
        self.keepHistory = keepHistory
    }

    /// Asks for a sync soon (coalesced with any other request within `minInterval`).
    public func requestSync() {
        schedule.request()
        wake()
    }

    public var consecutiveFailures: Int { schedule.consecutiveFailures }

    /// Runs until the calling task is cancelled.
    public func run() async {
        await withTaskCancellationHandler {
            while !Task.isCancelled {
                let (at, kind) = schedule.next()
                let now = clock.now - origin
                if at > now {
                    await sleep(until: origin + at)
                    continue
                }
                schedule.started(kind, at: now)
                var ok = true
                do { try await sync(kind) } catch { ok = false }
                schedule.finished(success: ok, at: clock.now - origin)
                completed.append((kind, ok))
                if completed.count > keepHistory { completed.removeFirst(completed.count - keepHistory) }
            }
        } onCancel: {
            Task { await self.wake() }
        }
    }

    private func sleep(until deadline: ContinuousClock.Instant) async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            waiter = cont
            timer = Task { [weak self] in
                try? await Task.sleep(until: deadline, clock: .continuous)
                await self?.wake()
            }
        }
        timer?.cancel()
        timer = nil
    }

    private func wake() {
        if let w = waiter {
            waiter = nil
            w.resume()
        }
    }
}
