#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import TestpodKit

/// testpod's server and probes on loopback: no namespaces, no root.
@Suite struct SocketAddressTests {
    @Test(arguments: [
        ("10.96.0.10:80", "10.96.0.10", UInt16(80), "10.96.0.10:80"),
        ("[fd00:10:96::a]:53", "fd00:10:96::a", 53, "[fd00:10:96::a]:53"),
        ("[::ffff:10.0.0.1]:8080", "10.0.0.1", 8080, "10.0.0.1:8080"),
    ])
    func parsesAndPrints(text: String, ip: String, port: UInt16, printed: String) throws {
        let a = try #require(SocketAddress(text))
        #expect(a.ip == ip)
        #expect(a.port == port)
        #expect(a.description == printed)
    }

    @Test(arguments: ["10.0.0.1", "fd00::1:80", "[fd00::1]", "10.0.0.1:99999", "host:80", "[fd00::1]80"])
    func rejectsMalformed(text: String) {
        #expect(SocketAddress(text) == nil)
    }
}

@Suite struct ReportTests {
    @Test func countsAnswersPerPodAndFailuresByKind() {
        var r = QueryReport(target: "10.96.0.10:80", protocol: .tcp)
        let src = SocketAddress(ip: "10.244.1.1", port: 40000)
        for o: ProbeOutcome in [.answer(name: "a", source: src), .answer(name: "b", source: src),
                                .answer(name: "a", source: SocketAddress(ip: "100.64.0.2", port: 1)),
                                .refused, .unreachable, .timeout, .reset, .error("EPERM")] {
            r.record(o)
        }
        #expect(r.count == 8)
        #expect(r.answered == 3)
        #expect(r.answers["a"] == PodAnswers(count: 2, sources: ["10.244.1.1", "100.64.0.2"]))
        #expect(r.names == ["a", "b"])
        #expect(r.rejected == 2)
        #expect(r.timeouts == 1 && r.resets == 1 && r.errors == ["EPERM": 1])
        #expect(r.sequence == ["a", "b", "a", "#refused", "#unreachable", "#timeout", "#reset", "#EPERM"])
    }
}

@Suite struct SummaryTests {
    @Test func queryLineNamesPodsCountsAndSourcesThenFailures() {
        var r = QueryReport(target: "10.96.0.10:80", protocol: .tcp)
        r.record(.answer(name: "b", source: SocketAddress(ip: "10.244.1.1", port: 5)))
        r.record(.answer(name: "a", source: SocketAddress(ip: "100.64.0.2", port: 6)))
        r.record(.timeout)
        #expect(r.summary == "a ×1 (from 100.64.0.2), b ×1 (from 10.244.1.1), timed out ×1")
        #expect(QueryReport(target: "x", protocol: .udp).summary == "no attempts")
    }

    @Test func streamLineSaysWhetherAnythingWasLost() {
        var r = StreamReport(target: "10.96.0.10:80", protocol: .tcp, connections: 2)
        r.opened = 2
        r.exchanges = 40
        r.seconds = 2
        r.answers = ["a": PodAnswers(count: 40, sources: ["100.64.0.2"])]
        #expect(r.summary == "2 connections for 2.0 s: 40 exchanges answered, none lost [a ×40]")
        r.failures = [StreamFailure(connection: 1, at: 1, reason: "reset")]
        r.failedConnections = 1
        #expect(r.summary == "2 connections for 2.0 s: 40 exchanges answered, 1 failed, 0 never opened (reset ×1) [a ×40]")
    }
}

@Suite struct HTTPGetTests {
    @Test func parsesStatusAndBody() {
        let r = HTTPGet.parse(Array("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n{\"x\":1}".utf8))
        #expect(r == HTTPResult(status: 503, body: "{\"x\":1}", error: nil))
        #expect(HTTPGet.parse(Array("SSH-2.0-OpenSSH\r\n".utf8)) == nil)
    }

    @Test func aClosedPortIsRefused() {
        let fd = socket(AF_INET, Sock.streamType, 0)
        _ = SocketAddress(ip: "127.0.0.1", port: 0)!.withSockaddr { bind(fd, $0, $1) }
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &ss) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        close(fd)
        let port = SocketAddress(storage: ss)!.port
        #expect(HTTPGet(target: SocketAddress(ip: "127.0.0.1", port: port)!).run().error == "refused")
    }
}

@Suite struct LoopbackTests {
    /// A port nobody listens on: bound, then closed.
    func closedPort(udp: Bool) -> UInt16 {
        let fd = socket(AF_INET, udp ? Sock.datagramType : Sock.streamType, 0)
        let a = SocketAddress(ip: "127.0.0.1", port: 0)!
        _ = a.withSockaddr { bind(fd, $0, $1) }
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &ss) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        close(fd)
        return SocketAddress(storage: ss)!.port
    }

    @Test(arguments: [ProbeProtocol.tcp, .udp], ["127.0.0.1", "::1"])
    func podAnswersWithItsNameAndTheClientAddress(proto: ProbeProtocol, ip: String) throws {
        let server = Server(name: "pod-x")
        let port = proto == .udp ? try server.serveDatagram(port: 0) : try server.serveStream(port: 0)
        let report = Probe(target: SocketAddress(ip: ip, port: port)!, proto: proto, timeoutMs: 2000).run(count: 3)
        #expect(report.answers == ["pod-x": PodAnswers(count: 3, sources: [ip])])
        #expect(report.failed == 0)
    }

    @Test(arguments: [ProbeProtocol.tcp, .udp])
    func closedPortIsRefused(proto: ProbeProtocol) {
        let port = closedPort(udp: proto == .udp)
        let report = Probe(target: SocketAddress(ip: "127.0.0.1", port: port)!, proto: proto, timeoutMs: 2000)
            .run(count: 2, parallel: 2)
        #expect(report.refused == 2, "\(report)")
    }

    @Test func aStoppedQueryReportsOnlyTheAttemptsMade() throws {
        let server = Server(name: "p")
        let port = try server.serveStream(port: 0)
        let probe = Probe(target: SocketAddress(ip: "127.0.0.1", port: port)!, proto: .tcp)
        #expect(probe.run(count: 50, shouldStop: { true }).count == 0)
        #expect(probe.run(count: 50, parallel: 5, shouldStop: { true }).count == 0)
        #expect(probe.run(count: 4, parallel: 2).answered == 4)
    }

    @Test func holdKeepsConnectionsAndReportsNoFailure() throws {
        let server = Server(name: "steady")
        let port = try server.serveStream(port: 0)
        let report = Hold(target: SocketAddress(ip: "127.0.0.1", port: port)!, proto: .tcp, connections: 3,
                          seconds: 0.5, intervalMs: 50, timeoutMs: 1000).run()
        #expect(report.isClean, "\(report)")
        #expect(report.opened == 3)
        #expect(report.lastAnswers == ["steady", "steady", "steady"])
        #expect(report.exchanges >= 3 * 5)
    }

    @Test func holdOnUDPKeepsItsSourcePort() throws {
        let server = Server(name: "dns")
        let port = try server.serveDatagram(port: 0)
        let report = Hold(target: SocketAddress(ip: "::1", port: port)!, proto: .udp, connections: 2,
                          seconds: 0.3, intervalMs: 50, timeoutMs: 1000).run()
        #expect(report.isClean, "\(report)")
    }
}
