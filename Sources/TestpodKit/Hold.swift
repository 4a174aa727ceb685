#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The client side of `testpod stream`: keeps K connections (TCP/SCTP) or K flows (UDP, one fixed
/// source port each) open and exchanges a line on each every interval, for a number of seconds.
/// A TCP connection that breaks, an exchange that gets no answer, or a different pod answering on
/// the same connection is a failure: "a restart under steady traffic loses no connection" is
/// `report.isClean`.
public struct Hold: Sendable {
    public var target: SocketAddress
    public var proto: ProbeProtocol
    public var source: SocketAddress?
    public var connections: Int
    public var seconds: Double
    public var intervalMs: Int
    public var timeoutMs: Int

    public init(target: SocketAddress, proto: ProbeProtocol, source: SocketAddress? = nil, connections: Int = 4,
                seconds: Double = 5, intervalMs: Int = 100, timeoutMs: Int = 1000) {
        self.target = target
        self.proto = proto
        self.source = source
        self.connections = connections
        self.seconds = seconds
        self.intervalMs = intervalMs
        self.timeoutMs = timeoutMs
    }

    private struct Flow {
        var fd: Int32 = -1
        var pending: [UInt8] = []
        var name: String?
        var alive = false
        var failed = false
    }

    /// Runs until `seconds` have passed or `shouldStop` returns true. `opened` is called once every
    /// connection has been tried, with how many answered.
    public func run(shouldStop: () -> Bool = { false }, opened: (Int) -> Void = { _ in }) -> StreamReport {
        var report = StreamReport(target: target.description, protocol: proto, connections: connections)
        let start = Sock.nowMs()
        let end = start + Int64(seconds * 1000)
        var flows = Array(repeating: Flow(), count: connections)
        let isStream = proto != .udp

        func fail(_ i: Int, _ reason: String) {
            report.failures.append(StreamFailure(connection: i, at: Double(Sock.nowMs() - start) / 1000, reason: reason))
            if !flows[i].failed {
                flows[i].failed = true
                report.failedConnections += 1
            }
            if isStream {
                close(flows[i].fd)
                flows[i].fd = -1
                flows[i].alive = false
            }
        }

        func reason(_ o: ProbeOutcome) -> String {
            switch o {
            case .answer: return "answer"
            case .refused: return "refused"
            case .unreachable: return "unreachable"
            case .timeout: return "timeout"
            case .reset: return "reset"
            case .error(let e): return e
            }
        }

        func note(_ i: Int, _ outcome: ProbeOutcome) {
            report.lastAnswers[i] = outcome.token
            guard case .answer(let name, let src) = outcome else {
                fail(i, reason(outcome))
                return
            }
            if let old = flows[i].name, old != name { fail(i, "switched:\(old)->\(name)") }
            if flows[i].name == nil { report.opened += 1 }
            flows[i].name = name
            report.exchanges += 1
            var a = report.answers[name] ?? PodAnswers()
            a.count += 1
            if let ip = src?.ip, !a.sources.contains(ip) {
                a.sources.append(ip)
                a.sources.sort()
            }
            report.answers[name] = a
        }

        // Exchange one line on flow i (for TCP the first line is the greeting, no request needed).
        func exchange(_ i: Int, greeting: Bool) {
            let deadline = Sock.nowMs() + Int64(timeoutMs)
            let fd = flows[i].fd
            if !greeting || !isStream {
                if let failure = Sock.sendAll(fd, Array("ping\n".utf8), until: deadline) {
                    note(i, failure)
                    return
                }
            }
            let result = isStream ? Sock.readLine(fd, pending: &flows[i].pending, until: deadline)
                                  : Sock.receiveDatagram(fd, until: deadline)
            switch result {
            case .success(let line): note(i, Sock.parseAnswer(line))
            case .failure(let f): note(i, f.outcome)
            }
        }

        let p = proto == .sctp ? Sock.sctpProtocol : 0
        for i in 0..<connections {
            let deadline = Sock.nowMs() + Int64(timeoutMs)
            switch Sock.open(to: target, from: source, type: isStream ? Sock.streamType : Sock.datagramType,
                             proto: p, until: deadline) {
            case .failure(let f):
                report.lastAnswers[i] = f.outcome.token
                fail(i, reason(f.outcome))
            case .success(let fd):
                flows[i].fd = fd
                flows[i].alive = true
                exchange(i, greeting: true)
            }
        }

        opened(report.opened)
        var nextTick = Sock.nowMs()
        while Sock.nowMs() < end && !shouldStop() {
            nextTick += Int64(intervalMs)
            let wait = min(nextTick - Sock.nowMs(), end - Sock.nowMs(), 1_000_000)
            if wait > 0 { usleep(UInt32(wait) * 1000) }
            if Sock.nowMs() >= end || shouldStop() { break }
            for i in 0..<connections where flows[i].alive {
                exchange(i, greeting: false)
            }
        }
        for f in flows where f.fd >= 0 { close(f.fd) }
        report.seconds = Double(Sock.nowMs() - start) / 1000
        return report
    }
}
