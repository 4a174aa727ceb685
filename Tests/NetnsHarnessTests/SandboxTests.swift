#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KubeObjects
import NetnsHarness
import Testing
@testable import kproxy_sandbox

private let manifests = """
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: default}
    spec:
      type: LoadBalancer
      clusterIPs: [10.96.100.10, "fd00:10:96::a"]
      externalIPs: [203.0.113.20]
      ports:
      - {name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}
      - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
    status:
      loadBalancer:
        ingress: [{ip: 203.0.113.10}, {ip: 203.0.113.99, ipMode: Proxy}]
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: web-abc
      namespace: default
      labels: {kubernetes.io/service-name: web}
    addressType: IPv4
    ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 5353, protocol: UDP}]
    endpoints:
    - {addresses: [10.244.1.10], nodeName: node-a}
    - {addresses: [10.244.2.10], nodeName: node-b}
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: web-v6
      namespace: default
      labels: {kubernetes.io/service-name: web}
    addressType: IPv6
    ports: [{name: http, port: 8080, protocol: TCP}, {name: sctp, port: 3868, protocol: SCTP}]
    endpoints:
    - {addresses: ["fd00:10:244:1:0::10"], nodeName: node-a}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: headless, namespace: default}
    spec: {clusterIP: None, ports: [{port: 5432}]}
    """

/// The sandbox's plan from manifests (no root needed), and its whole life under root.
@Suite struct SandboxPlanTests {
    var objects: [KubeObject] {
        ManifestDecoder.decode(manifests, file: "test.yaml").objects.map(\.object)
    }

    @Test func onePodPerEndpointAddressOnTheEndpointsNode() {
        let plan = SandboxPlan(objects: objects, nodeName: "node-a", sctp: false)
        #expect(plan.pods.map(\.name) == ["web@10.244.1.10", "web@10.244.2.10", "web@fd00:10:244:1::10"])
        #expect(plan.pods.map(\.placement) == [.local, .remote, .local])
        #expect(plan.pods[0].tcp == [8080] && plan.pods[0].udp == [5353])
        #expect(plan.pods[2].tcp == [8080] && plan.pods[2].sctp.isEmpty)  // no SCTP in this kernel
        #expect(SandboxPlan(objects: objects, nodeName: "node-a", sctp: true).pods[2].sctp == [3868])
        #expect(plan.pods[2].spec.families == [.ipv6])
    }

    @Test func targetsCoverEveryWayIn() {
        let plan = SandboxPlan(objects: objects, nodeName: "node-a", sctp: false)
        let http = plan.targets.filter { $0.service == "default/web:http" }.map { "\($0.kind) \($0.address):\($0.port)" }
        #expect(http == ["ClusterIP 10.96.100.10:80", "ClusterIP fd00:10:96::a:80",
                         "NodePort \(AddressPlan.nodeIPv4):30080", "NodePort \(AddressPlan.nodeIPv6):30080",
                         "ExternalIP 203.0.113.20:80", "LoadBalancer 203.0.113.10:80"])
        #expect(plan.targets.filter { $0.service == "default/web:dns" }.allSatisfy { $0.proto == .udp })
        #expect(!plan.targets.contains { $0.service.hasPrefix("default/headless") })
    }

    @Test(.enabled(if: Cluster.isSupported, "\(Cluster.unsupportedReason ?? "")"))
    func upBuildsThePodsFollowsTheFolderAndCleansUpOnSIGTERM() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sandbox-test-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir + "/m", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try manifests.write(toFile: dir + "/m/web.yaml", atomically: true, encoding: .utf8)
        let prefix = "kpsbt\(getpid() % 1000)-"
        defer { Cluster.destroy(prefix: prefix) }
        let sandbox = try Binaries.locate("kproxy-sandbox", override: "KPROXY_SANDBOX")
        let testpod = try Binaries.testpod()
        let up = try ChildProcess(label: "sandbox", arguments: [sandbox, "up", "--manifests", dir + "/m", "--prefix", prefix,
                                                            "--env-file", dir + "/env", "--poll-ms", "100"],
                                  logPath: dir + "/up.log")
        defer { up.stop() }
        #expect(Cluster.waitUntil(timeout: 30) { FileManager.default.fileExists(atPath: dir + "/env") || !up.isRunning },
                "\(up.output)")
        let env = try String(contentsOfFile: dir + "/env", encoding: .utf8)
        #expect(env.contains("CLIENT_NS=\(prefix)c0-client"), "\(env)")
        let answer = try Shell.run(["ip", "netns", "exec", prefix + "c0-client", testpod, "query", "--format", "text",
                                    "--count", "2", "10.244.2.10:8080"]).stdout
        #expect(answer.contains("web@10.244.2.10 ×2"), "\(answer)\n\(up.output)")

        // Scaling is an extra slice in the folder; the sandbox adds the pod.
        try Shell.run([sandbox, "scale", "--manifests", dir + "/m", "--service", "default/web", "--add", "1"])
        #expect(Cluster.waitUntil(timeout: 20) {
            (try? String(contentsOfFile: dir + "/env", encoding: .utf8))?.contains("GENERATION=2") == true
        }, "\(up.output)")
        let added = try Shell.run(["ip", "netns", "exec", prefix + "c0-client", testpod, "query", "--format", "text",
                                   "--count", "1", "10.244.1.200:8080"]).stdout
        #expect(added.contains("web@10.244.1.200 ×1"), "\(added)\n\(up.output)")

        #expect(up.stop(grace: 20) == 0, "\(up.output)")
        let left = try Shell.run(["ip", "netns", "list"]).stdout.split(separator: "\n").filter { $0.hasPrefix(prefix) }
        #expect(left.isEmpty, "\(left)")
    }
}
