import Foundation
import Logging
import NetworkTypes
import ServiceTable
import Testing
@testable import Agent

/// The health-check node ports and the no-local-endpoints gauges follow the table's diffs; after
/// every step of a random walk they must say what a look at the whole table says.
@Suite struct TableFollowersTests {
    /// A small deterministic generator (the walk is the same on every run).
    struct Walk {
        var state: UInt64
        mutating func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(n))
        }
    }

    static func endpoints(_ n: Int, _ base: UInt32) -> [Endpoint] {
        (0..<n).map { Endpoint(ip: .v4(0x0AF4_0000 + base * 16 + UInt32($0)), port: 8080) }
    }

    /// Service `s`, port `p`: a random shape, with service `s`'s own health-check port when it has one.
    static func entry(_ s: Int, _ p: Int, _ w: inout Walk) -> ServicePortEntry {
        let lb = w.next(3) > 0
        let local = endpoints(w.next(3), UInt32(s * 4 + p))
        let cluster = endpoints(w.next(2), UInt32(100 + s * 4 + p)) + local
        return ServicePortEntry(
            name: ServicePortName(namespace: "walk", name: "svc-\(s)", port: "p\(p)", protocol: .tcp),
            type: lb ? .loadBalancer : .clusterIP, clusterIPs: [.v4(0x0A60_0000 + UInt32(s))], port: UInt16(80 + p),
            nodePort: lb ? UInt16(30000 + s * 4 + p) : nil,
            externalTrafficPolicy: w.next(2) == 0 ? .local : .cluster,
            internalTrafficPolicy: w.next(3) == 0 ? .local : .cluster,
            healthCheckNodePort: lb && w.next(4) > 0 ? UInt16(32100 + s) : nil,
            endpoints: cluster, clusterEndpoints: cluster, localEndpoints: local)
    }

    /// What the whole table says about each health-check port.
    static func expectedHealth(_ table: ServiceTable) -> [UInt16: HealthCheckNodePorts.ServiceHealth] {
        var out: [UInt16: HealthCheckNodePorts.ServiceHealth] = [:]
        for e in table.entries.values {
            guard let port = e.healthCheckNodePort else { continue }
            var h = out[port] ?? .init(service: .init(namespace: e.name.namespace, name: e.name.name),
                                       localEndpoints: 0, serviceProxyHealthy: true)
            h.localEndpoints = max(h.localEndpoints, Set(e.localEndpoints.map(\.ip)).count)
            out[port] = h
        }
        return out
    }

    /// Distinct services with a Local policy, endpoints, and none of them here: (internal, external).
    static func expectedNoLocal(_ table: ServiceTable) -> (Int, Int) {
        var internalNoLocal = Set<String>(), externalNoLocal = Set<String>()
        for e in table.entries.values where e.hasEndpoints && e.localEndpoints.isEmpty {
            if e.internalPolicyIsLocal { internalNoLocal.insert(e.name.serviceName) }
            if e.externalPolicyIsLocal { externalNoLocal.insert(e.name.serviceName) }
        }
        return (internalNoLocal.count, externalNoLocal.count)
    }

    @Test func incrementalFollowersAgreeWithTheWholeTable() async throws {
        // Its servers come and go on loopback as the walk gives ports and takes them back.
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        let health = HealthCheckNodePorts(bindHost: "127.0.0.1", logger: quiet)
        let noLocal = ProxyMetrics.NoLocalEndpoints()
        var w = Walk(state: 42)
        var previous: ServiceTable?
        var entries: [ServicePortEntry] = []
        var seenHealthy = false, seenUnhealthy = false, seenNoLocal = false
        for step in 0..<300 {
            // Change, add or remove one to three service ports.
            var byName = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })
            for _ in 0...w.next(3) {
                let (s, p) = (w.next(6), w.next(2))
                let name = ServicePortName(namespace: "walk", name: "svc-\(s)", port: "p\(p)", protocol: .tcp)
                if byName[name] != nil && w.next(4) == 0 { byName[name] = nil } else { byName[name] = Self.entry(s, p, &w) }
            }
            entries = Array(byName.values)
            let table = ServiceTable(version: UInt64(step + 1), node: NodeInfo(name: "n"), entries: entries)
            // Every 25th step is a full sync, as the periodic resync.
            let update = TableUpdate(previous: previous, current: table,
                                     diff: step % 25 == 0 ? nil : previous.map { TableDiff.between($0, table) })
            try await health.apply(update)
            let counts = noLocal.follow(update)
            previous = table

            let expected = Self.expectedHealth(table)
            for port in UInt16(32100)..<32106 {
                let (status, body) = health.answer(port)
                #expect(body == expected[port], "step \(step), port \(port)")
                let want = expected[port].map { $0.localEndpoints > 0 ? 200 : 503 } ?? 404
                #expect(status.code == want, "step \(step), port \(port)")
                seenHealthy = seenHealthy || want == 200
                seenUnhealthy = seenUnhealthy || want == 503
            }
            let (i, e) = Self.expectedNoLocal(table)
            #expect(counts.internal == i && counts.external == e, "step \(step): \(counts) vs (\(i), \(e))")
            seenNoLocal = seenNoLocal || i > 0 || e > 0
        }
        // The walk went through the cases that matter.
        #expect(seenHealthy && seenUnhealthy && seenNoLocal)
        try await health.cleanup()
    }
}

extension TableFollowersTests {
    /// A plain HTTP/1.0 GET on loopback; the status code, or nil when nothing answered.
    static func status(_ port: UInt16) -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET / HTTP/1.0\r\n\r\n".utf8)
        guard send(fd, request, request.count, 0) == request.count else { return nil }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 12 else { return nil }
        return Int(String(decoding: buffer[9..<12], as: UTF8.self))
    }

    @Test func aPortGivenBackAndClaimedAgainIsServedAgain() async throws {
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        let health = HealthCheckNodePorts(bindHost: "127.0.0.1", logger: quiet)
        let port: UInt16 = 32_199
        var w = Walk(state: 7)
        var lb = Self.entry(0, 0, &w)
        lb.type = .loadBalancer
        lb.nodePort = 30_000
        lb.healthCheckNodePort = port
        lb.localEndpoints = Self.endpoints(1, 9)
        let node = NodeInfo(name: "n")
        let with = ServiceTable(version: 1, node: node, entries: [lb])
        let without = ServiceTable(version: 2, node: node, entries: [])
        let again = ServiceTable(version: 3, node: node, entries: [lb])
        try await health.apply(TableUpdate(previous: nil, current: with, diff: nil))
        #expect(await Self.eventually { Self.status(port) == 200 })
        // Taken back and claimed again in the next sync, before the old server has closed.
        try await health.apply(TableUpdate(previous: with, current: without, diff: TableDiff.between(with, without)))
        try await health.apply(TableUpdate(previous: without, current: again, diff: TableDiff.between(without, again)))
        #expect(await Self.eventually { Self.status(port) == 200 }, "the port is served again")
        try await health.cleanup()
        #expect(await Self.eventually { Self.status(port) == nil }, "cleanup closes the port")
    }

    static func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<100 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }
}
