#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The client side of `testpod query`: N fresh connections (or N datagrams, each from a fresh source
/// port) to one address, each classified as an answer, a refusal, an unreachable, a timeout or a reset.
public struct Probe: Sendable {
    public var target: SocketAddress
    public var proto: ProbeProtocol
    /// Source address to bind (port 0); `nil` lets the kernel choose.
    public var source: SocketAddress?
    /// Per attempt: connect and answer together must arrive within this.
    public var timeoutMs: Int

    public init(target: SocketAddress, proto: ProbeProtocol, source: SocketAddress? = nil, timeoutMs: Int = 1000) {
        self.target = target
        self.proto = proto
        self.source = source
        self.timeoutMs = timeoutMs
    }

    /// One connection or datagram.
    public func attempt() -> ProbeOutcome {
        let deadline = Sock.nowMs() + Int64(timeoutMs)
        switch proto {
        case .tcp, .sctp:
            let p = proto == .sctp ? Sock.sctpProtocol : 0
            switch Sock.open(to: target, from: source, type: Sock.streamType, proto: p, until: deadline) {
            case .failure(let f): return f.outcome
            case .success(let fd):
                defer { close(fd) }
                var pending: [UInt8] = []
                switch Sock.readLine(fd, pending: &pending, until: deadline) {
                case .success(let line): return Sock.parseAnswer(line)
                case .failure(let f): return f.outcome
                }
            }
        case .udp:
            switch Sock.open(to: target, from: source, type: Sock.datagramType, proto: 0, until: deadline) {
            case .failure(let f): return f.outcome
            case .success(let fd):
                defer { close(fd) }
                if let failure = Sock.sendAll(fd, Array("ping\n".utf8), until: deadline) { return failure }
                switch Sock.receiveDatagram(fd, until: deadline) {
                case .success(let line): return Sock.parseAnswer(line)
                case .failure(let f): return f.outcome
                }
            }
        }
    }

    /// `count` attempts, `parallel` at a time (attempts run in order when `parallel` is 1), with
    /// `intervalMs` between the attempts of one worker. When `shouldStop` turns true no further
    /// attempt starts and the report covers the attempts made.
    public func run(count: Int, parallel: Int = 1, intervalMs: Int = 0,
                    shouldStop: @escaping @Sendable () -> Bool = { false }) -> QueryReport {
        var report = QueryReport(target: target.description, protocol: proto)
        let workers = max(1, min(parallel, count))
        if workers == 1 {
            for i in 0..<count {
                if i > 0 && intervalMs > 0 { usleep(UInt32(intervalMs) * 1000) }
                if shouldStop() { break }
                report.record(attempt())
            }
            return report
        }
        let results = OutcomeSlots(count: count)
        let probe = self
        let threads = (0..<workers).map { w in
            Thread { @Sendable in
                var first = true
                for i in stride(from: w, to: count, by: workers) {
                    if !first && intervalMs > 0 { usleep(UInt32(intervalMs) * 1000) }
                    first = false
                    if shouldStop() { break }
                    results.set(i, probe.attempt())
                }
                results.finishWorker()
            }
        }
        threads.forEach { $0.start() }
        results.waitForWorkers(workers)
        for outcome in results.all() { report.record(outcome) }
        return report
    }
}

/// Outcomes filled in by worker threads, read once they all finished.
final class OutcomeSlots: @unchecked Sendable {
    private let condition = NSCondition()
    private var slots: [ProbeOutcome?]
    private var finished = 0

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ outcome: ProbeOutcome) {
        condition.lock()
        slots[i] = outcome
        condition.unlock()
    }

    func finishWorker() {
        condition.lock()
        finished += 1
        condition.broadcast()
        condition.unlock()
    }

    func waitForWorkers(_ n: Int) {
        condition.lock()
        while finished < n { condition.wait() }
        condition.unlock()
    }

    func all() -> [ProbeOutcome] {
        condition.lock()
        defer { condition.unlock() }
        return slots.compactMap { $0 }  // attempts never made (stopped early) are not reported
    }
}
