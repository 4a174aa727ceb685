/// Exponential backoff with jitter, as client-go's reflector uses (800 ms doubling to 30 s).
public struct BackoffPolicy: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration
    public var factor: Double
    /// Each wait is drawn uniformly from `[d × (1 − jitter), d]`, so many clients restarting
    /// together (an apiserver rollout) do not come back in step.
    public var jitter: Double

    public init(initial: Duration = .milliseconds(800), maximum: Duration = .seconds(30),
                factor: Double = 2, jitter: Double = 0.5) {
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = min(max(jitter, 0), 1)
    }
}

/// The running state of a `BackoffPolicy`.
struct Backoff: Sendable {
    let policy: BackoffPolicy
    private var current: Double?   // seconds

    init(_ policy: BackoffPolicy) { self.policy = policy }

    /// The next wait: the first is `initial`, each following one `factor` times longer, up to `maximum`.
    mutating func next() -> Duration {
        let initial = Self.seconds(policy.initial)
        let maximum = Self.seconds(policy.maximum)
        let base = min(current.map { $0 * policy.factor } ?? initial, maximum)
        current = base
        let low = base * (1 - policy.jitter)
        let wait = low >= base ? base : Double.random(in: low...base)
        return .nanoseconds(Int64(wait * 1e9))
    }

    mutating func reset() { current = nil }

    private static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
