#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NetnsHarness
import NetworkTypes
import Testing
import TestpodKit

/// The real kube-apiserver (built once by scripts/kube-apiserver.sh) for end-to-end runs.
enum TestAPIServerBinary {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/kube-apiserver.sh").path
    static let isBuilt: Bool = (try? Shell.run(["bash", script, "path"], check: false, timeout: 20))?.succeeded ?? false
}

/// `kproxy run --kubeconfig` against a real kube-apiserver, end to end: objects created, scaled and
/// deleted with kubectl become rules that carry real traffic. The apiserver, kubectl and kproxy all run
/// inside the node namespace, so the apiserver's loopback address is the node's own.
@Suite(.serialized, .enabled(if: Cluster.isSupported, "\(Cluster.unsupportedReason ?? "")"),
       .enabled(if: TestAPIServerBinary.isBuilt, "kube-apiserver is not built here (scripts/kube-apiserver.sh build)"))
struct KproxyAPIRunTests {
    /// Kubernetes 1.20 serves EndpointSlices as v1beta1: the node comes from the `topology` map.
    static func manifest(_ c: Cluster, _ pods: [String]) -> String {
        OneServiceManifest(name: "web", clusterIP: "10.96.100.10", portName: "http", port: 80, targetPort: 8080,
                           sliceVersion: "v1beta1").yaml(c, pods: pods)
    }

    @Test func followsWhatKubectlDoes() async throws {
        try await Cluster.with(pods: [PodSpec("web-a"), PodSpec("web-b", on: .remote)]) { c in
            let dir = c.workDir + "/apiserver"
            let script = TestAPIServerBinary.script
            // The script leaves etcd and the apiserver running in the background, holding whatever
            // descriptors it inherited: posix_spawn with output to a file, so nothing waits for them.
            let started = try Shell.spawnAndWait(["ip", "netns", "exec", c.node.name, "bash", script, "start", dir],
                                                 log: dir + ".start.log",
                                                 environment: ["KPROXY_OWNER_PID": "\(getpid())"])
            defer { _ = try? Shell.spawnAndWait(["ip", "netns", "exec", c.node.name, "bash", script, "stop", dir], log: "/dev/null") }
            #expect(started == 0, "kube-apiserver.sh start: \((try? String(contentsOfFile: dir + ".start.log", encoding: .utf8)) ?? "")")
            guard started == 0 else { return }
            func kubectl(_ args: [String], input: String? = nil) throws {
                try c.exec(in: c.node, ["kubectl", "--kubeconfig", dir + "/kubeconfig"] + args, input: input)
            }
            let client = c.client().namespace

            try kubectl(["apply", "-f", "-"], input: Self.manifest(c, ["web-a", "web-b"]))
            // kube-proxy's own identity and role (system:kube-proxy → system:node-proxier).
            let kproxy = try c.runKproxy(["run", "--mode", "nftables", "--kubeconfig", dir + "/kubeconfig-proxier",
                                          "--hostname-override", c.options.nodeName])
            try c.waitForQuery(from: client, "10.96.100.10", 80, count: 16, within: 30) {
                $0.names == ["web-a", "web-b"] && $0.failed == 0
            }

            // Scaled down: web-b leaves the slice, new connections go to web-a only.
            try kubectl(["apply", "-f", "-"], input: Self.manifest(c, ["web-a"]))
            try c.waitForQuery(from: client, "10.96.100.10", 80, count: 16, within: 30) {
                $0.names == ["web-a"] && $0.failed == 0
            }

            // Deleted: the service's rules go, nobody answers on its address any more.
            try kubectl(["delete", "service", "web"])
            try c.waitForQuery(from: client, "10.96.100.10", 80, count: 4, within: 30) { $0.answered == 0 }
            let ruleset = try c.ruleset()
            #expect(!ruleset.contains("10.96.100.10"), "the deleted service's elements are gone")
            #expect(kproxy.stop() == 0, "\(kproxy.output)")
        }
    }
}
