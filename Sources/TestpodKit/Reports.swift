import Foundation

/// The transport a probe uses.
public enum ProbeProtocol: String, Sendable, Codable, CaseIterable {
    case tcp, udp, sctp
}

/// What one connection attempt (or datagram) came to.
public enum ProbeOutcome: Sendable, Hashable {
    /// A pod answered with its name and the client address it saw.
    case answer(name: String, source: SocketAddress?)
    /// ECONNREFUSED: a TCP reset to the SYN, or ICMP port unreachable.
    case refused
    /// ICMP host/net unreachable or administratively prohibited (EHOSTUNREACH, ENETUNREACH).
    case unreachable
    /// Nothing came back in time: the traffic was blackholed (or the answer was lost).
    case timeout
    /// The connection was reset, or closed before the pod's line arrived.
    case reset
    /// Any other failure, by errno name (EPERM when a local rule dropped the packet, …).
    case error(String)

    /// A short token for `QueryReport.sequence`: the pod's name, or `#refused`, `#timeout`, …
    public var token: String {
        switch self {
        case .answer(let name, _): return name
        case .refused: return "#refused"
        case .unreachable: return "#unreachable"
        case .timeout: return "#timeout"
        case .reset: return "#reset"
        case .error(let e): return "#\(e)"
        }
    }
}

/// The answers one pod gave.
public struct PodAnswers: Sendable, Codable, Hashable {
    /// How many attempts this pod answered.
    public var count: Int
    /// The client addresses the pod saw (without ports), sorted: tells whether traffic was masqueraded.
    public var sources: [String]

    public init(count: Int = 0, sources: [String] = []) {
        self.count = count
        self.sources = sources
    }
}

/// What `testpod query` prints: per answering pod, how often and from which source; and how the
/// other attempts failed, so a test can tell "rejected" (refused/unreachable) from "blackholed" (timeouts).
public struct QueryReport: Sendable, Codable, Hashable {
    public var target: String
    public var `protocol`: ProbeProtocol
    /// Attempts made.
    public var count: Int
    /// Attempts a pod answered.
    public var answered: Int
    /// Keyed by pod name.
    public var answers: [String: PodAnswers]
    public var refused: Int
    public var unreachable: Int
    public var timeouts: Int
    public var resets: Int
    /// Other failures, keyed by errno name.
    public var errors: [String: Int]
    /// One token per attempt, in order: a pod's name, or `#refused`, `#unreachable`, `#timeout`, `#reset`, `#EPERM`…
    public var sequence: [String]

    public init(target: String, protocol: ProbeProtocol) {
        self.target = target
        self.protocol = `protocol`
        self.count = 0
        self.answered = 0
        self.answers = [:]
        self.refused = 0
        self.unreachable = 0
        self.timeouts = 0
        self.resets = 0
        self.errors = [:]
        self.sequence = []
    }

    /// The names of the pods that answered.
    public var names: Set<String> { Set(answers.keys) }

    /// Every source address any pod saw.
    public var sources: Set<String> { Set(answers.values.flatMap(\.sources)) }

    /// Attempts that were actively rejected (refused or unreachable).
    public var rejected: Int { refused + unreachable }

    /// Attempts that failed in any way.
    public var failed: Int { count - answered }

    /// One line for people: `web-1 ×6 (from 100.64.0.2), web-2 ×4 (from 100.64.0.2)`, then the failures.
    public var summary: String {
        var parts = answers.keys.sorted().map { name in
            let a = answers[name]!
            return "\(name) ×\(a.count) (from \(a.sources.joined(separator: ", ")))"
        }
        for (label, n) in [("refused", refused), ("unreachable", unreachable), ("timed out", timeouts), ("reset", resets)]
        where n > 0 {
            parts.append("\(label) ×\(n)")
        }
        for (e, n) in errors.sorted(by: { $0.key < $1.key }) { parts.append("\(e) ×\(n)") }
        return parts.isEmpty ? "no attempts" : parts.joined(separator: ", ")
    }

    public mutating func record(_ outcome: ProbeOutcome) {
        count += 1
        sequence.append(outcome.token)
        switch outcome {
        case .answer(let name, let source):
            answered += 1
            var a = answers[name] ?? PodAnswers()
            a.count += 1
            if let ip = source?.ip, !a.sources.contains(ip) {
                a.sources.append(ip)
                a.sources.sort()
            }
            answers[name] = a
        case .refused: refused += 1
        case .unreachable: unreachable += 1
        case .timeout: timeouts += 1
        case .reset: resets += 1
        case .error(let e): errors[e, default: 0] += 1
        }
    }
}

/// One failure seen by `testpod stream`.
public struct StreamFailure: Sendable, Codable, Hashable {
    /// Which of the K connections (0-based).
    public var connection: Int
    /// Seconds since the stream started.
    public var at: Double
    /// `refused`, `timeout`, `reset`, `unreachable`, an errno name, or `switched:OLD->NEW` when a
    /// different pod answered on the same connection.
    public var reason: String

    public init(connection: Int, at: Double, reason: String) {
        self.connection = connection
        self.at = at
        self.reason = reason
    }
}

/// What `testpod stream` prints: K long-lived connections (or UDP flows with a fixed source port)
/// exchanging a line every interval; every lost connection or unanswered exchange is a failure.
public struct StreamReport: Sendable, Codable, Hashable {
    public var target: String
    public var `protocol`: ProbeProtocol
    public var connections: Int
    /// Connections (flows) that were established and answered at least once.
    public var opened: Int
    /// Exchanges answered, over all connections.
    public var exchanges: Int
    /// Connections that ended (TCP) or lost an exchange (UDP) before the end.
    public var failedConnections: Int
    public var failures: [StreamFailure]
    /// Keyed by pod name: how many exchanges each answered, and the sources it saw.
    public var answers: [String: PodAnswers]
    /// Per connection, how its last exchange ended: the pod that answered, or `#timeout`, `#reset`,
    /// `#refused`… For "after the endpoint went away, every UDP flow reached another pod".
    public var lastAnswers: [String]
    public var seconds: Double

    public init(target: String, protocol: ProbeProtocol, connections: Int) {
        self.target = target
        self.protocol = `protocol`
        self.connections = connections
        self.opened = 0
        self.exchanges = 0
        self.failedConnections = 0
        self.failures = []
        self.answers = [:]
        self.lastAnswers = Array(repeating: "#none", count: connections)
        self.seconds = 0
    }

    /// No connection failed and every one was opened.
    public var isClean: Bool { failures.isEmpty && opened == connections }

    /// One line for people: `8 connections for 4.0 s: 640 exchanges answered, none lost (web-1 ×320, …)`.
    public var summary: String {
        let pods = answers.keys.sorted().map { "\($0) ×\(answers[$0]!.count)" }.joined(separator: ", ")
        var line = "\(connections) \(`protocol` == .udp ? "flows" : "connections") for \(String(format: "%.1f", seconds)) s: "
            + "\(exchanges) exchanges answered, "
        if failures.isEmpty && opened == connections {
            line += "none lost"
        } else {
            let reasons = Dictionary(grouping: failures, by: \.reason).map { "\($0.key) ×\($0.value.count)" }.sorted()
            line += "\(failedConnections) failed, \(connections - opened) never opened (\(reasons.joined(separator: ", ")))"
        }
        return pods.isEmpty ? line : line + " [\(pods)]"
    }

    /// How many connections had their last exchange answered.
    public var answeringAtEnd: Int { lastAnswers.filter { !$0.hasPrefix("#") }.count }
}
