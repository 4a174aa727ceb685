import Foundation
import NetworkTypes
import ServiceTable
@testable import NFTablesDataPlane

/// A node namespace programmed by the data plane, two pod namespaces behind it and a client
/// namespace in front of it, dual-stack:
///
///     client 192.168.50.2 / fd00:50::2  ──  node 192.168.50.1 / fd00:50::1
///     pod-a  10.244.1.2 / fd00:244:1::2 ──  node 10.244.1.1 / fd00:244:1::1
///     pod-b  10.244.2.2 / fd00:244:2::2 ──  node 10.244.2.1 / fd00:244:2::1
///
/// Every pod answers TCP 8080 and UDP 5353 with `<pod> <peer address>`, one line per connection
/// or datagram. The client's and pods' default routes go through the node, so service addresses
/// (10.96/12, fd00:96::/64, 192.168.60/24) are reached through it.
final class TrafficLab: @unchecked Sendable {
    let ns = Namespaces()
    var node = "", client = "", pods: [String: String] = [:]
    let podIPv4 = ["pod-a": "10.244.1.2", "pod-b": "10.244.2.2"]
    let podIPv6 = ["pod-a": "fd00:244:1::2", "pod-b": "fd00:244:2::2"]
    static let clusterCIDRs = [CIDR("10.244.0.0/16")!, CIDR("fd00:244::/48")!]

    func setUp() throws {
        node = try ns.create("node")
        client = try ns.create("client")
        try run(node, "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
        try link(client, "c", v4: ("192.168.50.1", "192.168.50.2"), v6: ("fd00:50::1", "fd00:50::2"))
        // The node's uplink is the client's side, as on a real node with a default route: traffic
        // to a service address that is not DNATed is forwarded (and so meets the filter chains).
        try run(node, "ip route add default via 192.168.50.2 && ip -6 route add default via fd00:50::2")
        for (i, pod) in ["pod-a", "pod-b"].enumerated() {
            let name = try ns.create(pod)
            pods[pod] = name
            try link(name, "p\(i)", v4: ("10.244.\(i + 1).1", "10.244.\(i + 1).2"),
                     v6: ("fd00:244:\(i + 1)::1", "fd00:244:\(i + 1)::2"))
            for v in ["4", "6,ipv6only=1"] {
                let (family, opts) = (v.prefix(1), v.dropFirst())
                try ns.spawn(name, "socat TCP\(family)-LISTEN:8080,fork,reuseaddr\(opts) SYSTEM:'echo \(pod) $SOCAT_PEERADDR'")
                try ns.spawn(name, "socat UDP\(family)-RECVFROM:5353,fork\(opts) SYSTEM:'echo \(pod) $SOCAT_PEERADDR'")
            }
        }
        // Wait until both pods listen.
        for _ in 0..<50 {
            let ready = pods.values.allSatisfy {
                ns.exec($0, "ss -ltn | grep -c :8080 | grep -q 2 && ss -lun | grep -c :5353 | grep -q 2").status == 0
            }
            if ready { return }
            usleep(100_000)
        }
        throw TestFailure("pods did not start listening")
    }

    /// A veth pair between the node (`.1` side) and `other` (`.2` side, default route via the node).
    private func link(_ other: String, _ tag: String, v4: (String, String), v6: (String, String)) throws {
        let n = "n-\(tag)", o = "o-\(tag)"
        try run(node, "ip link add \(n) type veth peer name \(o) && ip link set \(o) netns \(other)")
        try run(node, "ip addr add \(v4.0)/24 dev \(n) && ip -6 addr add \(v6.0)/64 dev \(n) nodad && ip link set \(n) up")
        try run(other, "ip addr add \(v4.1)/24 dev \(o) && ip -6 addr add \(v6.1)/64 dev \(o) nodad && ip link set \(o) up")
        try run(other, "ip route add default via \(v4.0) && ip -6 route add default via \(v6.0)")
    }

    private func run(_ name: String, _ command: String) throws {
        let r = ns.exec(name, command)
        if r.status != 0 { throw TestFailure("\(command): \(r.output)") }
    }

    func tearDown() { ns.destroy() }

    var nodePath: String { ns.path(node) }

    /// One TCP connection from namespace `from`; returns the answer (`pod-a 192.168.50.2`) or the error.
    /// `timeout` bounds the connect (a dropped SYN shows as "timed out"); once connected, the pod's
    /// answer is waited for longer, since a busy machine can be slow to fork the shell that echoes it.
    /// (`-t`: socat's stdin is at its end at once, and by default it waits only 0.5 s after that.)
    func tcp(_ host: String, _ port: UInt16, from: String? = nil, timeout: Double = 2) -> String {
        let target = host.contains(":") ? "[\(host)]" : host
        let answerWait = max(timeout, 6)
        let r = ns.exec(from ?? client, "timeout \(timeout + answerWait + 1) socat -t\(answerWait) -T\(answerWait) - TCP:\(target):\(port),connect-timeout=\(timeout) </dev/null 2>&1")
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A UDP datagram from a fixed source port (the same flow each time); returns the answer, or
    /// "" when five tries in a row got none (a busy machine can be slow to fork the answer; `-t`
    /// is how long socat waits for it once its stdin has ended, 0.5 s by default).
    func udp(_ host: String, _ port: UInt16, sourcePort: UInt16, from: String? = nil) -> String {
        let target = host.contains(":") ? "[\(host)]" : host
        for _ in 0..<5 {
            let r = ns.exec(from ?? client, "echo hi | timeout 6 socat -t4 -T4 - UDP:\(target):\(port),sourceport=\(sourcePort),reuseaddr 2>&1")
            let answer = r.output.trimmingCharacters(in: .whitespacesAndNewlines)
            if !answer.isEmpty { return answer }
        }
        return ""
    }

    /// The node's UDP conntrack entries and the pods' UDP sockets, for a failure's message.
    func udpState() -> String {
        var out = "node conntrack:\n" + ns.exec(node, "conntrack -L -p udp 2>&1").output
        for (pod, name) in pods.sorted(by: { $0.key < $1.key }) {
            out += "\(pod) sockets:\n" + ns.exec(name, "ss -uanp 2>&1").output
        }
        return out
    }

    /// The pods that answered `count` connections (counts by pod name, plus errors under "error").
    func spread(_ host: String, _ port: UInt16, count: Int = 16, from: String? = nil) -> [String: Int] {
        var seen: [String: Int] = [:]
        for _ in 0..<count {
            let answer = tcp(host, port, from: from)
            let pod = answer.split(separator: " ").first.map(String.init) ?? ""
            seen[pods[pod] != nil ? pod : "error", default: 0] += 1
        }
        return seen
    }
}
