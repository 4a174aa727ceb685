import Foundation
import Testing
import Yams
@testable import Agent
import ObjectSources

/// The manifests in deploy/ parse, reference each other consistently, grant only what the agent
/// needs, and carry a configuration the agent accepts.
struct DeployManifestsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    let objects: [Yams.Node]

    init() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("deploy/kproxy.yaml"), encoding: .utf8)
        objects = try Array(Yams.compose_all(yaml: text)).compactMap { $0 }
    }

    func object(_ kind: String) throws -> Yams.Node {
        try #require(objects.first { $0["kind"]?.string == kind }, "no \(kind) in deploy/kproxy.yaml")
    }

    @Test func everyObjectIsNamedAndInKubeSystem() throws {
        #expect(Set(objects.compactMap { $0["kind"]?.string }) ==
                ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"])
        for o in objects {
            #expect(o["metadata"]?["name"]?.string?.isEmpty == false)
            if !["ClusterRole", "ClusterRoleBinding"].contains(o["kind"]?.string ?? "") {
                #expect(o["metadata"]?["namespace"]?.string == "kube-system")
            }
        }
    }

    @Test func bindingTiesTheRoleToTheDaemonSetsServiceAccount() throws {
        let sa = try object("ServiceAccount")["metadata"]!["name"]!.string
        let role = try object("ClusterRole")["metadata"]!["name"]!.string
        let binding = try object("ClusterRoleBinding")
        #expect(binding["roleRef"]?["name"]?.string == role)
        #expect(binding["roleRef"]?["kind"]?.string == "ClusterRole")
        let subject = try #require(binding["subjects"]?[0])
        #expect(subject["kind"]?.string == "ServiceAccount")
        #expect(subject["name"]?.string == sa)
        #expect(subject["namespace"]?.string == "kube-system")
        #expect(try object("DaemonSet")["spec"]?["template"]?["spec"]?["serviceAccountName"]?.string == sa)
    }

    /// Exactly what the agent calls: list and watch of services, nodes and endpointslices (the
    /// agent writes nothing, events included). No get, no write, no secrets.
    @Test func roleGrantsExactlyWhatTheAgentCalls() throws {
        var granted = Set<String>()
        for rule in try object("ClusterRole")["rules"]?.sequence ?? [] {
            for group in rule["apiGroups"]?.sequence ?? [] {
                for resource in rule["resources"]?.sequence ?? [] {
                    for verb in rule["verbs"]?.sequence ?? [] {
                        granted.insert("\(group.string ?? "")/\(resource.string ?? "")/\(verb.string ?? "")")
                    }
                }
            }
        }
        let needed = KubeAPISource.requiredAccess(watchingNode: true)
        #expect(needed.count == 6)
        #expect(granted == needed)
    }

    @Test func daemonSetRunsTheAgentWithTheConfigMapsConfiguration() throws {
        let ds = try object("DaemonSet")
        let pod = try #require(ds["spec"]?["template"]?["spec"])
        #expect(pod["hostNetwork"]?.bool == true)
        let container = try #require(pod["containers"]?[0])
        let command = (container["command"]?.sequence ?? []).compactMap(\.string)
        #expect(command.prefix(2) == ["/usr/local/bin/kproxy", "run"])
        let configFlag = try #require(command.first { $0.hasPrefix("--config=") })
        let configPath = String(configFlag.dropFirst("--config=".count))
        // The flag's file lives in a mount of the ConfigMap, under one of its keys.
        let mount = try #require((container["volumeMounts"]?.sequence ?? []).first {
            configPath.hasPrefix(($0["mountPath"]?.string ?? "-") + "/")
        })
        let volume = try #require((pod["volumes"]?.sequence ?? []).first { $0["name"] == mount["name"] })
        let configMap = try object("ConfigMap")
        #expect(volume["configMap"]?["name"]?.string == configMap["metadata"]?["name"]?.string)
        let key = String(configPath.dropFirst((mount["mountPath"]?.string ?? "").count + 1))
        let text = try #require(configMap["data"]?[key]?.string, "ConfigMap has no key \(key)")
        let config = try KubeProxyConfiguration.parse(text, file: "ConfigMap kproxy/\(key)")
        #expect(config.mode == "nftables")
        #expect(config.ignoredFields.isEmpty, "the shipped config only sets what kproxy uses")
        // Probes point at the health server the configuration enables.
        let healthPort = try ServerAddresses.split(config.healthzBindAddress ?? "").1
        #expect(container["livenessProbe"]?["httpGet"]?["port"]?.int == healthPort)
        #expect(container["livenessProbe"]?["httpGet"]?["path"]?.string == "/livez")
        #expect(container["readinessProbe"]?["httpGet"]?["path"]?.string == "/healthz")
    }

    @Test func containerGetsNetAdminAndNothingElse() throws {
        let container = try #require(try object("DaemonSet")["spec"]?["template"]?["spec"]?["containers"]?[0])
        let security = try #require(container["securityContext"])
        #expect(security["privileged"]?.bool != true)
        #expect((security["capabilities"]?["add"]?.sequence ?? []).compactMap(\.string) == ["NET_ADMIN"])
        #expect((security["capabilities"]?["drop"]?.sequence ?? []).compactMap(\.string) == ["ALL"])
        #expect(security["allowPrivilegeEscalation"]?.bool == false)
    }
}
