import Foundation
import KubeObjects
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import ObjectSources

/// The source against a scripted server: what kube-apiserver 1.20 cannot show (EndpointSlices v1,
/// as every cluster from 1.21 serves them) and exact failure answers.
struct ScriptedServerTests {
    static let quiet = FakeAPIServer.Answer.watch(lines: [], hold: .seconds(30))

    func start(_ server: FakeAPIServer, node: String? = nil) throws -> (KubeAPISource, EventRecorder) {
        let source = try KubeAPISource(config: KubeClientConfig(server: server.url),
                                       options: fastOptions(node: node), logger: testLogger)
        return (source, EventRecorder())
    }

    @Test func endpointSlicesV1ArePreferredWhenServed() async throws {
        let server = try FakeAPIServer { r in
            switch (r.path, r.isWatch) {
            case ("/apis/discovery.k8s.io", _): return .json(status: 200, body: FakeJSON.discovery(["v1", "v1beta1"]))
            case ("/api/v1/services", false):
                return .json(status: 200, body: FakeJSON.list(kind: "Service", resourceVersion: "10",
                                                              items: [FakeJSON.service("ns", "web", rv: "5")]))
            case ("/apis/discovery.k8s.io/v1/endpointslices", false):
                return .json(status: 200, body: FakeJSON.list(kind: "EndpointSlice", resourceVersion: "10", items: [
                    FakeJSON.sliceV1("ns", "web-1", service: "web", rv: "6", node: "node-a", zone: "zone-1"),
                ]))
            case (_, true): return Self.quiet
            default: return .json(status: 404, body: FakeJSON.status(code: 404, reason: "NotFound", message: "no \(r.path)"))
            }
        }
        defer { server.stop() }
        let (source, recorder) = try start(server)
        await recorder.consume(source.watch())
        defer { Task { await recorder.stop() } }
        try await eventually("first batch") { await !recorder.batches.isEmpty }

        #expect(source.statistics.endpointSliceAPIVersion == "discovery.k8s.io/v1")
        guard case .endpointSlice(let slice)? = await recorder.object(.endpointSlice, "ns", "web-1") else {
            Issue.record("no slice"); return
        }
        #expect(slice.endpoints?.first?.effectiveNodeName == "node-a")
        #expect(slice.endpoints?.first?.effectiveZone == "zone-1")
        #expect(slice.endpoints?.first?.hints?.forZones?.map(\.name) == ["zone-1"])

        // The requests kube-proxy makes: the same label selector on both, watches from the list's version.
        try await eventually("watches started") { server.requests.filter(\.isWatch).count >= 2 }
        let requests = server.requests
        let selector = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
        for path in ["/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices"] {
            let list = try #require(requests.first { $0.path == path && !$0.isWatch })
            #expect(list.query["labelSelector"] == selector)
            let watch = try #require(requests.first { $0.path == path && $0.isWatch })
            #expect(watch.query["labelSelector"] == selector)
            #expect(watch.query["resourceVersion"] == "10")
            #expect(watch.query["allowWatchBookmarks"] == "true")
        }
        #expect(!requests.contains { $0.path.contains("v1beta1") })
    }

    /// A watch answered `410 Gone` (as an HTTP status, or as an ERROR event in the stream) lists
    /// again and reports only the difference: the deleted object, the changed one.
    @Test(arguments: [true, false])
    func expiredWatchRelistsAndReportsTheDifference(asHTTPStatus: Bool) async throws {
        let lists = NIOLockedValueBox(0)
        let watches = NIOLockedValueBox(0)
        let expired = FakeJSON.status(code: 410, reason: "Expired", message: "too old resource version: 10 (15)")
        let server = try FakeAPIServer { r in
            switch (r.path, r.isWatch) {
            case ("/apis/discovery.k8s.io", _): return .json(status: 200, body: FakeJSON.discovery(["v1"]))
            case ("/apis/discovery.k8s.io/v1/endpointslices", false):
                return .json(status: 200, body: FakeJSON.list(kind: "EndpointSlice", resourceVersion: "10", items: []))
            case ("/api/v1/services", false):
                let n = lists.withLockedValue { $0 += 1; return $0 }
                let items = n == 1
                    ? [FakeJSON.service("ns", "stays", rv: "3"), FakeJSON.service("ns", "goes", rv: "4"), FakeJSON.service("ns", "changes", rv: "5")]
                    : [FakeJSON.service("ns", "stays", rv: "3"), FakeJSON.service("ns", "changes", rv: "14")]
                return .json(status: 200, body: FakeJSON.list(kind: "Service", resourceVersion: n == 1 ? "10" : "20", items: items))
            case ("/api/v1/services", true):
                let n = watches.withLockedValue { $0 += 1; return $0 }
                guard n == 1 else { return Self.quiet }
                if asHTTPStatus { return .json(status: 410, body: expired) }
                return .watch(lines: [FakeJSON.event("ERROR", expired)], hold: .seconds(30))
            case (_, true): return Self.quiet
            default: return .json(status: 404, body: "{}")
            }
        }
        defer { server.stop() }
        let (source, recorder) = try start(server)
        await recorder.consume(source.watch())
        defer { Task { await recorder.stop() } }
        try await eventually("relisted") { await recorder.batches.count >= 2 }
        let batches = await recorder.batches
        #expect(batches[0].count == 3)
        #expect(batches[1].map(\.id.name.name).sorted() == ["changes", "goes"])
        #expect(batches[1].contains(.delete(ObjectID(kind: .service, name: NamespacedName(namespace: "ns", name: "goes")))))
        #expect(await recorder.object(.service, "ns", "changes")?.resourceVersion == "14")
        #expect(await recorder.duplicates == [])
        let stats = source.statistics
        #expect(stats.expired == 1 && stats.relists == 1, "\(stats)")
        // The next watch starts from the new list's resourceVersion.
        try await eventually("watch after the relist") { watches.withLockedValue { $0 } >= 2 }
        #expect(server.requests.last { $0.path == "/api/v1/services" && $0.isWatch }?.query["resourceVersion"] == "20")
    }

    @Test func aServerEndingEveryWatchAtOnceIsNotHammered() async throws {
        let server = try FakeAPIServer { r in
            switch (r.path, r.isWatch) {
            case ("/apis/discovery.k8s.io", _): return .json(status: 200, body: FakeJSON.discovery(["v1"]))
            case (_, false): return .json(status: 200, body: FakeJSON.list(kind: "X", resourceVersion: "1", items: []))
            case (_, true): return .watch(lines: [], hold: .zero)
            }
        }
        defer { server.stop() }
        let (source, recorder) = try start(server)
        await recorder.consume(source.watch())
        defer { Task { await recorder.stop() } }
        let started = ContinuousClock.now
        // The source keeps retrying …
        try await eventually("repeated watches") { source.statistics.watches >= 4 }
        try await Task.sleep(for: .seconds(2))
        // … but with backoff (0.1 s doubling to 1 s): a handful per resource per second of elapsed
        // time, not thousands. The bound follows the time that really passed on a busy machine.
        let watches = source.statistics.watches
        let elapsed = Double((ContinuousClock.now - started).components.seconds) + 1
        #expect(Double(watches) < 3 * (elapsed + 4), "\(watches) watches in \(elapsed) s: \(source.statistics)")
    }

    @Test func anUnreachableServerIsRetriedUntilItAnswers() async throws {
        // Nothing listens on this port yet: the source keeps trying, and yields nothing meanwhile.
        let probe = try FakeAPIServer { _ in .json(status: 500, body: "{}") }
        let port = probe.port
        probe.stop()
        let source = try KubeAPISource(config: KubeClientConfig(server: "http://127.0.0.1:\(port)"),
                                       options: fastOptions(), logger: testLogger)
        let recorder = EventRecorder()
        await recorder.consume(source.watch())
        defer { Task { await recorder.stop() } }
        // (AsyncHTTPClient itself retries a refused connection until its 10 s connect timeout.)
        try await eventually("a failed attempt") { source.statistics.errors >= 1 }
        #expect(await recorder.batches.isEmpty)

        let server = try FakeAPIServer(port: port) { r in
            switch (r.path, r.isWatch) {
            case ("/apis/discovery.k8s.io", _): return .json(status: 200, body: FakeJSON.discovery(["v1"]))
            case (_, false): return .json(status: 200, body: FakeJSON.list(kind: "X", resourceVersion: "1", items: []))
            case (_, true): return Self.quiet
            }
        }
        defer { server.stop() }
        try await eventually("the initial state once the server answers") { await !recorder.batches.isEmpty }
    }
}
