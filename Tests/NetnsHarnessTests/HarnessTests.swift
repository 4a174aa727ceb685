#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import NetnsHarness
import NetworkTypes
import Testing
import TestpodKit

/// The harness proves itself: the cluster comes up, pods answer straight to their addresses, a
/// hand-written DNAT rule spreads a service IP over two pods, and nothing is left behind.
@Suite(.serialized, .enabled(if: Cluster.isSupported, "\(Cluster.unsupportedReason ?? "")"))
struct HarnessTests {
    static let pods = [
        PodSpec("a", tcp: [8080], udp: [5353]),
        PodSpec("b", tcp: [8080], udp: [5353]),
        PodSpec("r", on: .remote, tcp: [8080], udp: [5353]),
    ]

    @Test func podsAnswerStraightToTheirAddressesFromClientNodeAndPods() async throws {
        try await Cluster.with(pods: Self.pods) { c in
            let client = c.client()
            let a = c.pod("a"), b = c.pod("b"), r = c.pod("r")
            for family in [IPFamily.ipv4, .ipv6] {
                for proto in [L4Protocol.tcp, .udp] {
                    let port: UInt16 = proto == .tcp ? 8080 : 5353
                    // From outside: the pod sees the client's own address (no NAT without rules).
                    let fromClient = try c.query(from: client.namespace, a.ip(family)!, port, proto, count: 3)
                    #expect(fromClient.answers == ["a": PodAnswers(count: 3, sources: [client.ip(family)])],
                            "\(family) \(proto): \(fromClient)")
                    // From the node: the pod sees its gateway address on the veth.
                    let fromNode = try c.query(from: c.node, a.ip(family)!, port, proto, count: 2)
                    #expect(fromNode.answers == ["a": PodAnswers(count: 2, sources: [AddressPlan.podGateway(.local, family)])],
                            "\(family) \(proto): \(fromNode)")
                    // Pod to pod, and to a pod on the remote node.
                    let podToPod = try c.query(from: b.namespace, a.ip(family)!, port, proto, count: 2)
                    #expect(podToPod.answers == ["a": PodAnswers(count: 2, sources: [b.ip(family)!])])
                    let toRemote = try c.query(from: client.namespace, r.ip(family)!, port, proto, count: 2)
                    #expect(toRemote.answers == ["r": PodAnswers(count: 2, sources: [client.ip(family)])],
                            "\(family) \(proto): \(toRemote)")
                }
            }
        }
    }

    @Test(.enabled(if: Shell.has("nft"), "needs nftables (`nft`)"))
    func handWrittenDNATSpreadsAServiceIPAcrossTwoPods() async throws {
        try await Cluster.with(pods: Self.pods) { c in
            // kube-proxy's shape in miniature: dnat in prerouting (pods, clients) and output (the node).
            try c.nft("""
                table inet harness {
                    chain svc-web {
                        numgen random mod 2 vmap { 0 : goto ep-a, 1 : goto ep-b }
                    }
                    chain ep-a {
                        meta nfproto ipv4 meta l4proto tcp dnat ip to \(c.pod("a").ipv4!):8080
                        meta nfproto ipv6 meta l4proto tcp dnat ip6 to [\(c.pod("a").ipv6!)]:8080
                    }
                    chain ep-b {
                        meta nfproto ipv4 meta l4proto tcp dnat ip to \(c.pod("b").ipv4!):8080
                        meta nfproto ipv6 meta l4proto tcp dnat ip6 to [\(c.pod("b").ipv6!)]:8080
                    }
                    chain services {
                        ip daddr 10.96.0.10 tcp dport 80 goto svc-web
                        ip6 daddr fd00:10:96::a tcp dport 80 goto svc-web
                    }
                    chain prerouting { type nat hook prerouting priority -100; jump services; }
                    chain output { type nat hook output priority -100; jump services; }
                    chain filter-forward {
                        type filter hook forward priority 0;
                        ip daddr 10.96.0.11 tcp dport 80 reject with tcp reset
                        ip daddr 10.96.0.12 tcp dport 80 drop
                    }
                }
                """)
            for (from, what) in [(c.client().namespace, "client"), (c.node, "node"), (c.pod("r").namespace, "remote pod")] {
                for vip in ["10.96.0.10", "fd00:10:96::a"] {
                    let report = try c.query(from: from, vip, 80, count: 40, timeoutMs: 2000)
                    #expect(report.answered == 40, "\(what) → \(vip): \(report)")
                    #expect(report.names == ["a", "b"], "\(what) → \(vip): \(report)")
                }
            }
            // The probe tells a rejected service from a blackholed one.
            let rejected = try c.query(from: c.client().namespace, "10.96.0.11", 80, count: 3, timeoutMs: 1000)
            #expect(rejected.refused == 3, "\(rejected)")
            let blackholed = try c.query(from: c.client().namespace, "10.96.0.12", 80, count: 3, timeoutMs: 300, parallel: 3)
            #expect(blackholed.timeouts == 3, "\(blackholed)")
            try c.flushConntrack()
        }
    }

    @Test func streamStaysCleanAndNoticesAPodGoingAway() async throws {
        try await Cluster.with(pods: [PodSpec("a"), PodSpec("b")]) { c in
            let steady = try c.startStream(from: c.client().namespace, c.pod("a").ipv4!, 8080,
                                           connections: 3, seconds: 1, intervalMs: 50)
            let report = try steady.finish()
            #expect(report.isClean, "\(report)")
            #expect(report.answers.keys.sorted() == ["a"])

            let broken = try c.startStream(from: c.client().namespace, c.pod("b").ipv6!, 8080,
                                           connections: 2, seconds: 120, intervalMs: 50, timeoutMs: 500)
            #expect(try broken.waitUntilOpened() == 2)
            c.stopPod(name: "b")
            pause(ms: 300)
            let after = try broken.stop()
            #expect(after.opened == 2)
            #expect(after.failedConnections == 2, "\(after)")
            #expect(after.answeringAtEnd == 0, "\(after)")
            // A stopped pod refuses new connections (its address stays).
            let refused = try c.query(from: c.client().namespace, c.pod("b").ipv4!, 8080, count: 2)
            #expect(refused.refused == 2, "\(refused)")
            try c.startPod(name: "b")
            #expect(try c.query(from: c.node, c.pod("b").ipv4!, 8080, count: 1).names == ["b"])
        }
    }

    @Test(.enabled(if: Shell.has("nft") && Shell.has("conntrack"), "needs nftables and conntrack-tools"))
    func udpFlowsFollowARuleChangeOnlyOnceConntrackForgetsThem() async throws {
        // The shape of kube-proxy's UDP conntrack cleanup test: a flow keeps its source port, so its
        // conntrack entry keeps it on the old pod until the entry is deleted. The stream runs until it
        // is stopped, so a test thread delayed by other suites cannot make it end early.
        try await Cluster.with(pods: [PodSpec("a", tcp: [], udp: [5353]), PodSpec("b", tcp: [], udp: [5353])]) { c in
            let a = c.pod("a").ipv4!, b = c.pod("b").ipv4!
            try c.nft("""
                table ip harness {
                    chain svc { meta l4proto udp dnat ip to \(a):5353; }
                    chain prerouting { type nat hook prerouting priority -100; ip daddr 10.96.0.53 udp dport 53 jump svc; }
                }
                """)
            let stream = try c.startStream(from: c.client().namespace, "10.96.0.53", 53, .udp,
                                           connections: 2, seconds: 120, intervalMs: 50, timeoutMs: 300)
            #expect(try stream.waitUntilOpened() == 2)
            try c.nft("flush chain ip harness svc\nadd rule ip harness svc meta l4proto udp dnat ip to \(b):5353\n")
            pause(ms: 500)
            // The rule says b, but both flows' entries still say a.
            let entries = try c.conntrackEntries().filter { $0.contains("dst=10.96.0.53") }
            #expect(entries.count == 2 && entries.allSatisfy { $0.contains("src=\(a) ") }, "\(entries)")
            try c.flushConntrack()
            pause(ms: 500)
            let report = try stream.stop()
            #expect(report.lastAnswers == ["b", "b"], "\(report)")
            #expect(report.failures.map(\.reason) == ["switched:a->b", "switched:a->b"], "\(report)")
        }
    }

    @Test func clientsWithChosenAddressesAreSeenAsSuch() async throws {
        // E.g. one client inside a load balancer's source ranges and one outside.
        let clients = [ClientSpec("inside", ipv4: "198.51.100.7", ipv6: "fd00:198:51:100::7"),
                       ClientSpec("outside", ipv4: "192.0.2.10")]
        try await Cluster.with(pods: [PodSpec("a")], clients: clients) { c in
            for (name, family, source) in [("inside", IPFamily.ipv4, "198.51.100.7"), ("inside", .ipv6, "fd00:198:51:100::7"),
                                           ("outside", .ipv4, "192.0.2.10"), ("outside", .ipv6, c.client("outside").ipv6)] {
                let r = try c.query(from: c.client(name).namespace, c.pod("a").ip(family)!, 8080, count: 2)
                #expect(r.answers == ["a": PodAnswers(count: 2, sources: [source])], "\(name) \(family): \(r)")
            }
            // The node routes what it does not own towards its first client, as towards a gateway.
            let route = try c.exec(in: c.node, ["ip", "route", "get", "203.0.113.10"]).stdout
            #expect(route.contains("via 198.51.100.7"), "\(route)")
        }
    }

    @Test func aHostNetworkServerAndABackgroundQuery() async throws {
        try await Cluster.with(pods: [PodSpec("a")]) { c in
            // An endpoint in the node itself (host network), reached from a pod.
            let server = try c.startServer(in: c.node, name: "node-local", tcp: [9999])
            let background = try c.startQuery(from: c.pod("a").namespace, AddressPlan.nodeIPv4, 9999,
                                              count: 10, intervalMs: 20)
            let report = try background.finish()
            #expect(report.answers == ["node-local": PodAnswers(count: 10, sources: [c.pod("a").ipv4!])], "\(report)")
            #expect(server.stop() == 128 + SIGTERM)
        }
    }

    @Test func podsCanBeAddedAndRemovedWhileRunning() async throws {
        try await Cluster.with(pods: [PodSpec("a")]) { c in
            let added = try c.addPod(PodSpec("late", on: .remote, tcp: [9000], ipv4: "10.244.7.7", families: [.ipv4]))
            #expect(added.ipv6 == nil)
            #expect(try c.query(from: c.client().namespace, "10.244.7.7", 9000, count: 2).names == ["late"])
            try c.removePod(name: "late")
            #expect(c.pods.map(\.name) == ["a"])
            let gone = try c.query(from: c.client().namespace, "10.244.7.7", 9000, count: 1, timeoutMs: 300)
            #expect(gone.answered == 0)
        }
    }

    @Test func aSpawnedProcessGetsSIGTERMAndRunsInTheNode() async throws {
        try await Cluster.with { c in
            // kproxy's graceful shutdown relies on this: the child must not inherit a blocked SIGTERM.
            let child = try c.spawn(in: c.node, ["sh", "-c", """
                trap 'echo got-term; exit 3' TERM
                ip -br addr show eth0
                echo ready
                while :; do sleep 0.05; done
                """], label: "trap")
            let deadline = Date().addingTimeInterval(5)
            while !child.output.contains("ready") && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(child.output.contains(AddressPlan.nodeIPv4), "\(child.output)")
            #expect(child.stop(grace: 5) == 3, "\(child.output)")
            #expect(child.output.contains("got-term"))
            #expect(!child.isRunning)
        }
    }

    @Test func destroyRemovesEveryNamespaceAndIsIdempotent() throws {
        let c = try Cluster.create(pods: [PodSpec("a")], clients: ["c1", "c2"])
        let prefix = c.prefix
        let podPid = try #require(Self.pids(in: c.pod("a").namespace.name).first)
        #expect(Self.namespaces(prefix).count == 5)  // node, remote node, 2 clients, 1 pod
        c.destroy()
        c.destroy()
        #expect(Self.namespaces(prefix).isEmpty)
        #expect(kill(podPid, 0) != 0)
        #expect(!FileManager.default.fileExists(atPath: c.workDir))
    }

    struct Boom: Error {}

    @Test func aFailingTestBodyStillCleansUp() async throws {
        var prefix = ""
        await #expect(throws: Boom.self) {
            try await Cluster.with(pods: [PodSpec("a")]) { c in
                prefix = c.prefix
                #expect(!Self.namespaces(prefix).isEmpty)
                throw Boom()
            }
        }
        #expect(!prefix.isEmpty)
        #expect(Self.namespaces(prefix).isEmpty)
    }

    @Test func aCrashedRunIsSweptByTheNext() throws {
        // A registry entry whose owner is dead, with a namespace of its prefix.
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let prefix = "kpstale\(getpid() % 1000)-"
        try FileManager.default.createDirectory(atPath: "\(Cluster.registryRoot)/\(prefix)", withIntermediateDirectories: true)
        try "\(dead.processIdentifier)\n".write(toFile: "\(Cluster.registryRoot)/\(prefix)/owner", atomically: true, encoding: .utf8)
        try Shell.run(["ip", "netns", "add", prefix + "node"])
        Cluster.sweepStale()
        #expect(Self.namespaces(prefix).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "\(Cluster.registryRoot)/\(prefix)"))
    }

    @Test func onlyPrefixesOfOurOwnCanBeDestroyed() {
        for unsafe in ["", "k", "kp", "kp-", "kpt", "x-", "kpt-*", "kp/../-"] {
            #expect(!Cluster.isSafePrefix(unsafe), "\(unsafe)")
            #expect(Cluster.destroy(prefix: unsafe).isEmpty)
        }
        for safe in ["kpdemo-", "kp1234ab-", "kpd77-"] { #expect(Cluster.isSafePrefix(safe)) }
        // Unregistered prefixes are not acted on, and only our own namespace shapes match.
        #expect(Cluster.destroy(prefix: "kpnever\(getpid())-").isEmpty)
        #expect(Cluster.isOurs("kpt-node", prefix: "kpt-"))
        #expect(Cluster.isOurs("kpt-p12-web", prefix: "kpt-"))
        #expect(Cluster.isOurs("kpt-c0-client", prefix: "kpt-"))
        #expect(!Cluster.isOurs("kpt-24964-l2r9c8-node", prefix: "kpt-"))
        #expect(!Cluster.isOurs("kpt-client", prefix: "kpt-"))
        #expect(!Cluster.isOurs("kpt-pod-a", prefix: "kpt-"))
    }

    static func namespaces(_ prefix: String) -> [String] {
        let out = (try? Shell.run(["ip", "netns", "list"]).stdout) ?? ""
        return out.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
            .filter { $0.hasPrefix(prefix) }
    }

    static func pids(in ns: String) -> [Int32] {
        let out = (try? Shell.run(["ip", "netns", "pids", ns]).stdout) ?? ""
        return out.split(separator: "\n").compactMap { Int32($0) }
    }
}
