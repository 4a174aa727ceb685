#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// New-connection latency: connect → first byte of the pod's answer line, one fresh TCP
/// connection after another (sequential, so that they do not queue behind each other).
public struct LatencyReport: Sendable, Codable, Hashable {
    public var target: String
    /// Connections attempted.
    public var count: Int
    /// Connections that got no answer (refused, timed out, …): not in the percentiles.
    public var failed: Int
    /// Percentiles over the answered connections, in microseconds.
    public var p10: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var mean: Double
    /// Every answered connection's time in microseconds, in order (only when asked for).
    public var samples: [Double]?

    /// Builds the report from samples in microseconds (nearest-rank percentiles).
    public init(target: String, samples: [Double], failed: Int, keepSamples: Bool = false) {
        self.samples = keepSamples ? samples : nil
        self.target = target
        self.count = samples.count + failed
        self.failed = failed
        let s = samples.sorted()
        func pct(_ p: Double) -> Double {
            s.isEmpty ? 0 : s[min(s.count - 1, max(0, Int((p / 100 * Double(s.count)).rounded(.up)) - 1))]
        }
        p10 = pct(10); p50 = pct(50); p90 = pct(90); p99 = pct(99)
        mean = s.isEmpty ? 0 : s.reduce(0, +) / Double(s.count)
    }
}

extension Probe {
    /// `count` sequential TCP connections; each is timed from `connect` to the first byte of the
    /// answer (the rest of the line is read too, so that a wrong answer counts as a failure).
    public func latency(count: Int, keepSamples: Bool = false, shouldStop: @Sendable () -> Bool = { false }) -> LatencyReport {
        var samples: [Double] = []
        samples.reserveCapacity(count)
        var failed = 0
        for _ in 0..<count {
            if shouldStop() { break }
            let started = Self.nowMicroseconds()
            let deadline = Sock.nowMs() + Int64(timeoutMs)
            switch Sock.open(to: target, from: source, type: Sock.streamType, proto: 0, until: deadline) {
            case .failure: failed += 1
            case .success(let fd):
                var pending: [UInt8] = []
                if case .success(let line) = Sock.readLine(fd, pending: &pending, until: deadline),
                   case .answer = Sock.parseAnswer(line) {
                    samples.append(Self.nowMicroseconds() - started)
                } else {
                    failed += 1
                }
                close(fd)
            }
        }
        return LatencyReport(target: target.description, samples: samples, failed: failed, keepSamples: keepSamples)
    }

    static func nowMicroseconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
    }
}
