import Foundation
import Controller
import KubeObjects
import ServiceTable
import Testing
@testable import ObjectSources

/// The API source against a real kube-apiserver (v1.20.2 from Debian's source package, built and
/// cached by scripts/kube-apiserver.sh), changed through kubectl. Each test works in its own namespace.
@Suite(.serialized, .enabled("kube-apiserver can be built on this machine (see the log for why not)") {
    await TestAPIServer.available()
}, .apiServer, .timeLimit(.minutes(5)))
struct KubeAPISourceTests {
    var server: TestAPIServer { TestAPIServer.current! }

    func namespace(_ prefix: String) async throws -> String {
        let ns = "\(prefix)-\(UUID().uuidString.prefix(6).lowercased())"
        try await server.apply(Manifest.namespace(ns))
        return ns
    }

    func startSource(_ options: KubeAPISourceOptions = fastOptions(), kubeconfig: String? = nil,
                     through proxy: CuttableProxy? = nil) async throws -> (KubeAPISource, EventRecorder) {
        var config = try KubeClientConfig.kubeconfig(file: kubeconfig ?? server.kubeconfig)
        if let proxy { config.server = "https://127.0.0.1:\(proxy.port)" }
        let source = try KubeAPISource(config: config, options: options, logger: testLogger)
        let recorder = EventRecorder()
        await recorder.consume(source.watch())
        return (source, recorder)
    }

    /// Waits until the consumer's view of `ns` is exactly the server's (same objects, same resourceVersions).
    func converges(_ recorder: EventRecorder, _ ns: String, timeout: Duration = .seconds(30),
                   sourceLocation: SourceLocation = #_sourceLocation) async throws {
        var last: ([String: String], [String: String]) = ([:], [:])
        let ok = try await eventually("source state converges with the server's in \(ns)", timeout: timeout,
                                      sourceLocation: sourceLocation) {
            let want = try await server.versions(namespace: ns)
            let have = await recorder.versions(namespace: ns)
            last = (want, have)
            return want == have
        }
        if !ok { Issue.record("server: \(last.0)\nsource: \(last.1)", sourceLocation: sourceLocation) }
        #expect(await recorder.duplicates == [], sourceLocation: sourceLocation)
    }

    @Test func listsWhatExistsAsOneFirstBatch() async throws {
        let ns = try await namespace("list")
        try await server.apply(Manifest.service(ns, "web"))
        try await server.apply(Manifest.slice(ns, "web-1", service: "web", addresses: ["10.1.0.1", "10.1.0.2"], node: "node-a"))
        try await server.apply(Manifest.node("node-a", zone: "zone-1"))
        try await server.apply(Manifest.node("node-b", zone: "zone-2"))

        let (source, recorder) = try await startSource(fastOptions(node: "node-a"))
        defer { Task { await recorder.stop() } }
        try await eventually("first batch") { await !recorder.batches.isEmpty }
        let first = await recorder.batches[0]
        let ids = Set(first.map(\.id.description))
        #expect(ids.contains("Service \(ns)/web"))
        #expect(ids.contains("EndpointSlice \(ns)/web-1"))
        #expect(ids.contains("Node node-a"))
        #expect(!ids.contains("Node node-b"), "only this node's Node is watched")
        #expect(first.allSatisfy { if case .upsert = $0 { true } else { false } })

        // Kubernetes 1.20 serves only v1beta1: the source found that out, and decoded its topology.
        #expect(source.statistics.endpointSliceAPIVersion == "discovery.k8s.io/v1beta1")
        guard case .endpointSlice(let slice)? = await recorder.object(.endpointSlice, ns, "web-1") else {
            Issue.record("no slice"); return
        }
        #expect(slice.endpoints?.map(\.addresses) == [["10.1.0.1"], ["10.1.0.2"]])
        #expect(slice.endpoints?.first?.effectiveNodeName == "node-a")
        guard case .service(let service)? = await recorder.object(.service, ns, "web") else {
            Issue.record("no service"); return
        }
        #expect(service.spec.clusterIP?.hasPrefix("10.96.") == true, "the apiserver allocated a cluster IP")
        guard case .node(let node)? = await recorder.object(.node, "", "node-a") else { Issue.record("no node"); return }
        #expect(node.zone == "zone-1")
        try await converges(recorder, ns)

        // This node's zone changes: the Node is updated; the other node's changes are not seen.
        try await server.kubectl("label", "node", "node-a", "--overwrite", "topology.kubernetes.io/zone=zone-9")
        try await server.kubectl("label", "node", "node-b", "--overwrite", "topology.kubernetes.io/zone=zone-8")
        try await eventually("node-a's new zone") {
            guard case .node(let n)? = await recorder.object(.node, "", "node-a") else { return false }
            return n.zone == "zone-9"
        }
        try await server.kubectl("delete", "node", "node-a", "node-b")
        try await eventually("node-a deleted") { await recorder.object(.node, "", "node-a") == nil }
        #expect(await recorder.events.filter { $0.id.description == "Node node-b" }.isEmpty)
    }

    @Test(arguments: ["kubeconfig-cert", "kubeconfig-proxier"])
    func authenticatesWithAClientCertificateOrAsKubeProxy(_ kubeconfig: String) async throws {
        // kubeconfig-cert: a client certificate, CA and key embedded as *-data.
        // kubeconfig-proxier: the user system:kube-proxy, whose RBAC role is system:node-proxier —
        // kproxy needs no more than kube-proxy's permissions (Node get/list/watch included).
        let ns = try await namespace("auth")
        try await server.apply(Manifest.service(ns, "web"))
        try await server.apply(Manifest.node("node-auth", zone: "z"))
        let (_, recorder) = try await startSource(fastOptions(node: "node-auth"), kubeconfig: server.directory + "/" + kubeconfig)
        defer { Task { await recorder.stop() } }
        try await converges(recorder, ns)
        try await server.apply(Manifest.slice(ns, "web-1", service: "web", addresses: ["10.10.0.1"]))
        try await converges(recorder, ns)
        #expect(await recorder.object(.node, "", "node-auth") != nil)
        try await server.kubectl("delete", "node", "node-auth")
    }

    /// In a pod: the service account of deploy/kproxy.yaml, with the RBAC rules shipped there, and a
    /// projected token that the kubelet rotates.
    @Test func inClusterWithTheShippedRBACAndARotatingToken() async throws {
        let ns = try await namespace("incluster")
        try await server.apply(Manifest.service(ns, "web"))
        try await server.apply(try Manifest.deployRBAC())
        let sa = FileManager.default.temporaryDirectory.appendingPathComponent("kproxy-sa-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: sa, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: sa) }
        try FileManager.default.copyItem(atPath: server.directory + "/ca.crt", toPath: sa + "/ca.crt")
        try "expired-token\n".write(toFile: sa + "/token", atomically: true, encoding: .utf8)
        let config = try KubeClientConfig.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "\(try server.port)"],
            serviceAccountDirectory: sa)
        let source = try KubeAPISource(config: config, options: fastOptions(node: "node-sa"), logger: testLogger)
        let recorder = EventRecorder()
        await recorder.consume(source.watch())
        defer { Task { await recorder.stop() } }

        try await eventually("the rejected token is retried") { source.statistics.errors >= 2 }
        #expect(await recorder.batches.isEmpty, "nothing is reported before the initial list succeeds")
        // The kubelet writes a fresh token: the next request uses it.
        let token = try await server.kubectl("create", "token", "kproxy", "-n", "kube-system")
        try token.write(toFile: sa + "/token", atomically: true, encoding: .utf8)
        try await converges(recorder, ns)
        try await server.apply(Manifest.node("node-sa", zone: "z"))
        try await eventually("the Node is watched with the shipped role") { await recorder.object(.node, "", "node-sa") != nil }
        try await server.kubectl("delete", "node", "node-sa")
    }

    @Test func objectsKproxyCannotUseAreSkippedAndTheStreamGoesOn() async throws {
        let ns = try await namespace("bad")
        // The API accepts a slice without the kubernetes.io/service-name label; kproxy (like kube-proxy)
        // cannot attach it to a service.
        try await server.apply(Manifest.slice(ns, "orphan-1", service: "", addresses: ["10.8.0.1"]))
        let (source, recorder) = try await startSource()
        defer { Task { await recorder.stop() } }
        try await eventually("initial list") { await !recorder.batches.isEmpty }
        #expect(await recorder.object(.endpointSlice, ns, "orphan-1") == nil)
        let skipped = source.statistics.skippedObjects
        #expect(skipped >= 1)

        // A valid slice, then an update that breaks it: the last valid version stays.
        try await server.apply(Manifest.service(ns, "web"))
        try await server.apply(Manifest.slice(ns, "web-1", service: "web", addresses: ["10.8.0.2"]))
        try await eventually("valid slice arrives") { await recorder.object(.endpointSlice, ns, "web-1") != nil }
        let valid = await recorder.object(.endpointSlice, ns, "web-1")
        try await server.kubectl("label", "endpointslices.v1beta1.discovery.k8s.io", "web-1", "-n", ns,
                                 "\(WellKnownLabels.serviceName)-")
        try await server.apply(Manifest.service(ns, "after"))
        try await eventually("the stream goes on") { await recorder.object(.service, ns, "after") != nil }
        #expect(await recorder.object(.endpointSlice, ns, "web-1") == valid, "the last valid version stays")
        #expect(source.statistics.skippedObjects == skipped + 1)
        #expect(await recorder.duplicates == [])
    }

    @Test func stoppingTheConsumerStopsTheSource() async throws {
        let (source, recorder) = try await startSource(fastOptions(watchTimeout: 1...1))
        try await eventually("initial list") { await !recorder.batches.isEmpty }
        try await Task.sleep(for: .seconds(2))
        #expect(source.statistics.watches > 2)
        await recorder.stop()
        try await Task.sleep(for: .seconds(1))
        let watches = source.statistics.watches
        try await Task.sleep(for: .seconds(3))
        #expect(source.statistics.watches == watches, "no watch is made once the consumer is gone")
    }

    @Test func watchSeesCreateScaleAndDelete() async throws {
        let ns = try await namespace("watch")
        let (_, recorder) = try await startSource()
        defer { Task { await recorder.stop() } }
        try await eventually("initial list") { await !recorder.batches.isEmpty }

        try await server.apply(Manifest.service(ns, "api", port: 8443))
        try await server.apply(Manifest.slice(ns, "api-1", service: "api", addresses: ["10.2.0.1"]))
        try await eventually("service and slice arrive") {
            let service = await recorder.object(.service, ns, "api"), slice = await recorder.object(.endpointSlice, ns, "api-1")
            return service != nil && slice != nil
        }

        // Scale up: the slice is edited to hold three endpoints.
        try await server.apply(Manifest.slice(ns, "api-1", service: "api", addresses: ["10.2.0.1", "10.2.0.2", "10.2.0.3"]))
        try await eventually("slice scaled to three endpoints") {
            guard case .endpointSlice(let s)? = await recorder.object(.endpointSlice, ns, "api-1") else { return false }
            return s.endpoints?.count == 3
        }
        // Scale down to one that is not ready.
        try await server.apply(Manifest.slice(ns, "api-1", service: "api", addresses: ["10.2.0.3"], ready: false))
        try await eventually("slice scaled down") {
            guard case .endpointSlice(let s)? = await recorder.object(.endpointSlice, ns, "api-1") else { return false }
            return s.endpoints?.count == 1 && s.endpoints?.first?.isReady == false
        }

        try await server.kubectl("delete", "service", "api", "-n", ns)
        try await server.kubectl("delete", "endpointslices.v1beta1.discovery.k8s.io", "api-1", "-n", ns)
        try await eventually("deletes arrive") {
            let service = await recorder.object(.service, ns, "api"), slice = await recorder.object(.endpointSlice, ns, "api-1")
            return service == nil && slice == nil
        }
        let history = await recorder.history(.endpointSlice, ns, "api-1")
        #expect(history.count == 4, "add, scale up, scale down, delete — each exactly once: \(history)")
        try await converges(recorder, ns)
    }

    @Test func slicesSplitAcrossSeveralObjects() async throws {
        let ns = try await namespace("split")
        try await server.apply(Manifest.service(ns, "big"))
        for i in 0..<3 {
            let addresses = (1...4).map { "10.3.\(i).\($0)" }
            try await server.apply(Manifest.slice(ns, "big-\(i)", service: "big", addresses: addresses))
        }
        let (_, recorder) = try await startSource()
        defer { Task { await recorder.stop() } }
        try await converges(recorder, ns)
        var addresses: Set<String> = []
        for i in 0..<3 {
            guard case .endpointSlice(let s)? = await recorder.object(.endpointSlice, ns, "big-\(i)") else {
                Issue.record("slice big-\(i) missing"); continue
            }
            #expect(s.serviceID == NamespacedName(namespace: ns, name: "big"))
            addresses.formUnion(s.endpoints?.flatMap(\.addresses) ?? [])
        }
        #expect(addresses.count == 12)
        try await tableMatchesKubectl(recorder, ns, "big", endpoints: 12)

        // One slice of the three goes away (the controller merged it): only its endpoints go.
        try await server.kubectl("delete", "endpointslices.v1beta1.discovery.k8s.io", "big-1", "-n", ns)
        try await converges(recorder, ns)
        #expect(await recorder.object(.endpointSlice, ns, "big-0") != nil)
        #expect(await recorder.object(.endpointSlice, ns, "big-1") == nil)
        try await tableMatchesKubectl(recorder, ns, "big", endpoints: 8)
    }

    /// The controller's table built from the source's events has the service as kubectl shows it:
    /// its cluster IP, its port, and every ready endpoint of every slice.
    func tableMatchesKubectl(_ recorder: EventRecorder, _ ns: String, _ name: String, endpoints: Int,
                             sourceLocation: SourceLocation = #_sourceLocation) async throws {
        var builder = TableBuilder(nodeName: "node-a")
        for event in await recorder.events { builder.apply(event) }
        let table = builder.build().table
        let key = ServicePortName(namespace: ns, name: name, port: "http", protocol: .tcp)
        let entry = try #require(table[key], sourceLocation: sourceLocation)
        let clusterIP = try await server.kubectl("get", "service", name, "-n", ns, "-o", "jsonpath={.spec.clusterIP}")
        #expect(entry.clusterIPs.map(\.description) == [clusterIP], sourceLocation: sourceLocation)
        #expect(entry.port == 80, sourceLocation: sourceLocation)
        let json = try await server.kubectl("get", "endpointslices.v1beta1.discovery.k8s.io", "-n", ns, "-l",
                                            "kubernetes.io/service-name=\(name)", "-o",
                                            "jsonpath={.items[*].endpoints[*].addresses[0]}")
        let want = Set(json.split(separator: " ").map { "\($0):8080" })
        #expect(want.count == endpoints, sourceLocation: sourceLocation)
        #expect(Set(entry.clusterEndpoints.map { "\($0.ip):\($0.port)" }) == want, sourceLocation: sourceLocation)
    }

    @Test func servicesOfAnotherProxyAndHeadlessSlicesAreNotSeen() async throws {
        let ns = try await namespace("filter")
        let (_, recorder) = try await startSource()
        defer { Task { await recorder.stop() } }
        try await eventually("initial list") { await !recorder.batches.isEmpty }

        let other = [WellKnownLabels.serviceProxyName: "other-proxy"]
        try await server.apply(Manifest.service(ns, "elsewhere", labels: other))
        try await server.apply(Manifest.slice(ns, "elsewhere-1", service: "elsewhere", addresses: ["10.4.0.1"], labels: other))
        try await server.apply(Manifest.service(ns, "headless", headless: true))
        try await server.apply(Manifest.slice(ns, "headless-1", service: "headless", addresses: ["10.4.0.2"],
                                              labels: [WellKnownLabels.headless: ""]))
        // Created last: once it is seen, the filtered ones would have been seen too.
        try await server.apply(Manifest.service(ns, "mine"))
        try await eventually("the unfiltered service arrives") { await recorder.object(.service, ns, "mine") != nil }
        #expect(await recorder.object(.service, ns, "elsewhere") == nil)
        #expect(await recorder.object(.endpointSlice, ns, "elsewhere-1") == nil)
        #expect(await recorder.object(.endpointSlice, ns, "headless-1") == nil)

        // The label added later: to the source, the service is gone; removed again: back.
        try await server.kubectl("label", "service", "mine", "-n", ns, "\(WellKnownLabels.serviceProxyName)=other")
        try await eventually("labelled service leaves") { await recorder.object(.service, ns, "mine") == nil }
        try await server.kubectl("label", "service", "mine", "-n", ns, "\(WellKnownLabels.serviceProxyName)-")
        try await eventually("unlabelled service returns") { await recorder.object(.service, ns, "mine") != nil }
        #expect(await recorder.duplicates == [])
    }

    @Test func watchesEndedByTheServerResumeWithoutLossOrDuplicates() async throws {
        let ns = try await namespace("resume")
        // Watches of 2–3 s: the server ends many of them while objects change.
        let (source, recorder) = try await startSource(fastOptions(watchTimeout: 2...3))
        defer { Task { await recorder.stop() } }
        try await eventually("initial list") { await !recorder.batches.isEmpty }
        for i in 0..<8 {
            try await server.apply(Manifest.service(ns, "svc-\(i % 3)", port: 1000 + i))
            try await server.apply(Manifest.slice(ns, "svc-\(i % 3)-a", service: "svc-\(i % 3)",
                                                  addresses: (0...i).map { "10.5.\(i % 3).\($0 + 1)" }))
            if i == 5 { try await server.kubectl("delete", "service", "svc-0", "-n", ns) }
            try await Task.sleep(for: .milliseconds(900))
        }
        try await converges(recorder, ns)
        let stats = source.statistics
        print("server-ended watches: \(stats)")
        #expect(stats.watches >= 6, "watches were ended and resumed: \(stats)")
        #expect(stats.relists == 0, "resumed from the last resourceVersion, no relist: \(stats)")
        #expect(stats.bookmarks > 0, "the apiserver sent bookmarks before ending watches: \(stats)")
        // Each service's history is exactly its changes: svc-1 was applied at i = 1, 4, 7.
        #expect(await recorder.history(.service, ns, "svc-1").count == 3)
    }

    @Test func droppedConnectionsResumeFromTheLastResourceVersion() async throws {
        let ns = try await namespace("drop")
        let proxy = try CuttableProxy(upstreamPort: try server.port)
        defer { proxy.stop() }
        try await server.apply(Manifest.service(ns, "one"))
        let (source, recorder) = try await startSource(through: proxy)
        defer { Task { await recorder.stop() } }
        try await converges(recorder, ns)

        for round in 0..<3 {
            proxy.cutAll()
            // Changes made while the source reconnects: the apiserver's watch cache still has them.
            try await server.apply(Manifest.service(ns, "one", port: 81 + round))
            try await server.apply(Manifest.slice(ns, "one-1", service: "one", addresses: (0...round).map { "10.9.0.\($0 + 1)" }))
            try await converges(recorder, ns)
        }
        let stats = source.statistics
        print("dropped connections: \(stats)")
        #expect(stats.errors >= 3, "the connections were cut: \(stats)")
        #expect(stats.relists == 0, "resumed from the last resourceVersion, nothing listed again: \(stats)")
        #expect(await recorder.history(.service, ns, "one").count == 4)
    }

    @Test func survivesAnAPIServerRestart() async throws {
        let ns = try await namespace("restart")
        try await server.apply(Manifest.service(ns, "before"))
        let (source, recorder) = try await startSource()
        defer { Task { await recorder.stop() } }
        try await converges(recorder, ns)

        try await server.restart()
        try await server.apply(Manifest.service(ns, "after"))
        try await server.apply(Manifest.slice(ns, "after-1", service: "after", addresses: ["10.6.0.1"]))
        try await server.kubectl("delete", "service", "before", "-n", ns)
        try await converges(recorder, ns)
        #expect(source.statistics.errors + source.statistics.expired > 0, "the watch was cut: \(source.statistics)")
        print("restart: \(source.statistics)")
        #expect(await recorder.history(.service, ns, "before").count == 2, "upsert, delete")
    }

    @Test func compactedResourceVersionRelistsAndReportsWhatChangedWhileAway() async throws {
        let ns = try await namespace("compact")
        let second = try await server.startSecond()
        for name in ["stays", "goes", "changes"] {
            try await server.apply(Manifest.service(ns, name))
            try await server.apply(Manifest.slice(ns, "\(name)-1", service: name, addresses: ["10.7.0.1"]))
        }
        let (source, recorder) = try await startSource()
        defer { Task { await recorder.stop() } }
        try await converges(recorder, ns)
        let staysVersion = await recorder.object(.service, ns, "stays")?.resourceVersion

        // The source's apiserver goes away; the cluster changes through the other one; etcd compacts.
        try await server.killAPIServer()
        try await server.kubectl("delete", "service", "goes", "-n", ns, kubeconfig: second)
        try await server.kubectl("delete", "endpointslices.v1beta1.discovery.k8s.io", "goes-1", "-n", ns, kubeconfig: second)
        try await server.apply(Manifest.slice(ns, "changes-1", service: "changes", addresses: ["10.7.0.1", "10.7.0.2"]),
                               kubeconfig: second)
        try await server.apply(Manifest.service(ns, "new"), kubeconfig: second)
        try await server.compact()
        try await server.restart()

        try await converges(recorder, ns, timeout: .seconds(60))
        let stats = source.statistics
        print("compaction: \(stats)")
        #expect(stats.expired >= 1, "the old resourceVersion was refused with 410: \(stats)")
        #expect(stats.relists >= 1, "\(stats)")
        #expect(await recorder.history(.service, ns, "goes").count == 2, "upsert, then the delete found by relisting")
        #expect(await recorder.history(.endpointSlice, ns, "changes-1").count == 2)
        #expect(await recorder.history(.service, ns, "stays").count == 1, "unchanged objects are not reported again")
        #expect(await recorder.object(.service, ns, "stays")?.resourceVersion == staysVersion)
    }
}
