/// What a sync should do: apply what changed, or repair everything.
public enum SyncKind: String, Sendable, Hashable {
    case incremental
    case full
}

/// When to sync next: kube-proxy's bounded-frequency runner as a pure state machine, so its
/// decisions can be tested without clocks. Times are durations since the runner started.
///
/// - A requested sync runs at once, but never sooner than `minInterval` after the previous one
///   started: a burst of changes is coalesced into one sync.
/// - A full sync runs at start and then every `fullSyncInterval`, repairing any drift.
/// - A failed sync is retried as a full sync after an exponential backoff
///   (`retryInitial` doubling up to `retryMax`), still respecting `minInterval`.
public struct SyncSchedule: Sendable {
    public var minInterval: Duration
    public var fullSyncInterval: Duration
    public var retryInitial: Duration
    public var retryMax: Duration

    public private(set) var lastStart: Duration?
    public private(set) var lastFullStart: Duration?
    public private(set) var pending = false
    public private(set) var consecutiveFailures = 0
    public private(set) var retryAt: Duration?
    private var running: SyncKind?

    public init(minInterval: Duration = .seconds(1), fullSyncInterval: Duration = .seconds(30),
                retryInitial: Duration = .milliseconds(500), retryMax: Duration = .seconds(30)) {
        self.minInterval = minInterval
        self.fullSyncInterval = fullSyncInterval
        self.retryInitial = retryInitial
        self.retryMax = retryMax
    }

    /// Something changed: a sync is wanted.
    public mutating func request() { pending = true }

    /// When the next sync is due and which kind it is.
    public func next() -> (at: Duration, kind: SyncKind) {
        guard let lastStart, let lastFullStart else { return (.zero, .full) }
        let earliest = lastStart + minInterval
        if let retryAt { return (max(retryAt, earliest), .full) }
        let periodic = lastFullStart + fullSyncInterval
        if pending {
            let at = earliest
            return at >= periodic ? (max(periodic, earliest), .full) : (at, .incremental)
        }
        return (max(periodic, earliest), .full)
    }

    /// A sync of `kind` begins at `now`. Changes requested from here on need another sync.
    public mutating func started(_ kind: SyncKind, at now: Duration) {
        lastStart = now
        if kind == .full { lastFullStart = now }
        pending = false
        running = kind
    }

    /// The sync begun last ended at `now`.
    public mutating func finished(success: Bool, at now: Duration) {
        running = nil
        if success {
            consecutiveFailures = 0
            retryAt = nil
        } else {
            consecutiveFailures += 1
            retryAt = now + backoff(consecutiveFailures)
        }
    }

    /// The wait before retry number `failures` (1-based): initial × 2^(failures-1), at most `retryMax`.
    public func backoff(_ failures: Int) -> Duration {
        var d = retryInitial
        for _ in 1..<max(failures, 1) {
            d = d * 2
            if d >= retryMax { return retryMax }
        }
        return min(d, retryMax)
    }
}
