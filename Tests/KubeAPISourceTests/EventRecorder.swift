import Foundation
import KubeObjects
import Logging
import Testing
@testable import ObjectSources

/// Consumes a source's stream and keeps what a consumer would know, plus every event, so tests can
/// check for lost events (state differs from the server's) and duplicated ones (an upsert that
/// changes nothing, a delete of something not there).
actor EventRecorder {
    private(set) var batches: [[ObjectEvent]] = []
    private(set) var state: [ObjectID: KubeObject] = [:]
    private(set) var duplicates: [String] = []
    private var task: Task<Void, Never>?

    /// Starts consuming `stream`.
    func consume(_ stream: AsyncStream<[ObjectEvent]>) {
        task = Task { [weak self] in
            for await batch in stream {
                guard let self else { return }
                await self.record(batch)
            }
        }
    }

    func stop() {
        task?.cancel()
        task = nil
    }

    private func record(_ batch: [ObjectEvent]) {
        batches.append(batch)
        for event in batch {
            switch event {
            case .upsert(let object):
                if state[object.id] == object { duplicates.append("upsert of unchanged \(object.id)") }
                state[object.id] = object
            case .delete(let id):
                if state.removeValue(forKey: id) == nil { duplicates.append("delete of unknown \(id)") }
            }
        }
    }

    var events: [ObjectEvent] { batches.flatMap { $0 } }

    /// The objects of one namespace (Nodes have none) the consumer knows, by `Kind name` → resourceVersion.
    func versions(namespace: String) -> [String: String] {
        var out: [String: String] = [:]
        for (id, object) in state where id.name.namespace == namespace {
            out["\(id.kind.rawValue) \(id.name.name)"] = object.resourceVersion ?? "?"
        }
        return out
    }

    func object(_ kind: ObjectKind, _ namespace: String, _ name: String) -> KubeObject? {
        state[ObjectID(kind: kind, name: NamespacedName(namespace: namespace, name: name))]
    }

    /// Every event about one object, in order.
    func history(_ kind: ObjectKind, _ namespace: String, _ name: String) -> [ObjectEvent] {
        let id = ObjectID(kind: kind, name: NamespacedName(namespace: namespace, name: name))
        return events.filter { $0.id == id }
    }
}

extension KubeObject {
    var resourceVersion: String? {
        switch self {
        case .service(let s): return s.metadata.resourceVersion
        case .endpointSlice(let e): return e.metadata.resourceVersion
        case .node(let n): return n.metadata.resourceVersion
        }
    }
}

/// Polls `condition` until it holds or `timeout` passes; records an issue (with `message`) on timeout.
@discardableResult
func eventually(_ message: @autoclosure () -> String, timeout: Duration = .seconds(30),
                sourceLocation: SourceLocation = #_sourceLocation,
                _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    Issue.record("timed out after \(timeout): \(message())", sourceLocation: sourceLocation)
    return false
}

/// Test logs go to stderr, warnings and worse only unless KPROXY_TEST_LOG=debug.
let testLogger: Logger = {
    var logger = Logger(label: "kproxy.test") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = ProcessInfo.processInfo.environment["KPROXY_TEST_LOG"] == "debug" ? .debug : .warning
    return logger
}()

/// Short waits, short watches: the recovery paths run within seconds.
func fastOptions(node: String? = nil, watchTimeout: ClosedRange<Int> = 300...600) -> KubeAPISourceOptions {
    KubeAPISourceOptions(nodeName: node, watchTimeoutSeconds: watchTimeout,
                         backoff: BackoffPolicy(initial: .milliseconds(100), maximum: .seconds(1)))
}

// MARK: - Manifests

enum Manifest {
    static func namespace(_ name: String) -> String {
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: \(name)\n"
    }

    static func service(_ ns: String, _ name: String, port: Int = 80, labels: [String: String] = [:],
                        headless: Bool = false) -> String {
        """
        apiVersion: v1
        kind: Service
        metadata:
          name: \(name)
          namespace: \(ns)
        \(labelBlock(labels))
        spec:
        \(headless ? "  clusterIP: None\n" : "")  selector: {app: \(name)}
          ports:
          - name: http
            protocol: TCP
            port: \(port)
            targetPort: 8080

        """
    }

    /// A discovery.k8s.io/v1beta1 slice (what Kubernetes 1.20 serves), endpoints on `node`.
    static func slice(_ ns: String, _ name: String, service: String, addresses: [String], node: String = "node-a",
                      labels: [String: String] = [:], ready: Bool = true) -> String {
        var all = labels
        if !service.isEmpty { all[WellKnownLabels.serviceName] = service }
        let endpoints = addresses.map {
            "- addresses: [\"\($0)\"]\n  conditions: {ready: \(ready)}\n  topology: {kubernetes.io/hostname: \(node)}\n"
        }.joined()
        return """
        apiVersion: discovery.k8s.io/v1beta1
        kind: EndpointSlice
        metadata:
          name: \(name)
          namespace: \(ns)
        \(labelBlock(all))
        addressType: IPv4
        ports:
        - name: http
          protocol: TCP
          port: 8080
        endpoints:
        \(endpoints.isEmpty ? "  []" : endpoints)
        """
    }

    static func node(_ name: String, zone: String) -> String {
        """
        apiVersion: v1
        kind: Node
        metadata:
          name: \(name)
          labels: {topology.kubernetes.io/zone: \(zone), kubernetes.io/hostname: \(name)}

        """
    }

    /// The ServiceAccount, ClusterRole and ClusterRoleBinding of deploy/kproxy.yaml.
    static func deployRBAC() throws -> String {
        let text = try String(contentsOfFile: TestAPIServer.repository + "/deploy/kproxy.yaml", encoding: .utf8)
        let kinds = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"]
        return text.components(separatedBy: "\n---").filter { doc in
            doc.split(separator: "\n").contains { line in kinds.contains { line == "kind: \($0)" } }
        }.joined(separator: "\n---\n")
    }

    private static func labelBlock(_ labels: [String: String]) -> String {
        if labels.isEmpty { return "  labels: {}" }
        return "  labels:\n" + labels.keys.sorted().map { "    \($0): \"\(labels[$0]!)\"" }.joined(separator: "\n")
    }
}

extension TestAPIServer {
    /// What the server holds in `namespace`, by `Kind name` → resourceVersion, through kubectl.
    func versions(namespace: String) async throws -> [String: String] {
        struct List: Decodable {
            struct Item: Decodable {
                struct Meta: Decodable { var name: String; var resourceVersion: String; var labels: [String: String]? }
                var kind: String
                var metadata: Meta
            }
            var items: [Item]
        }
        let json = try await kubectl("get", "services,endpointslices.v1beta1.discovery.k8s.io", "-n", namespace, "-o", "json")
        let list = try JSONDecoder().decode(List.self, from: Data(json.utf8))
        var out: [String: String] = [:]
        for item in list.items {
            let labels = item.metadata.labels ?? [:]
            if labels[WellKnownLabels.serviceProxyName] != nil || labels[WellKnownLabels.headless] != nil { continue }
            out["\(item.kind) \(item.metadata.name)"] = item.metadata.resourceVersion
        }
        return out
    }
}
