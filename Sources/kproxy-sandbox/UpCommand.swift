#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import NetnsHarness

struct UpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Build the sandbox and keep its pods in step with the manifest folder until SIGTERM.",
        discussion: """
            Builds the node namespace (where `kproxy run` goes: `ip netns exec PREFIXnode kproxy run …`), \
            a remote node, clients outside the cluster, and one pod per endpoint address, answering on \
            the endpoint's ports with its name (`<service>@<address>`). Every --poll-ms it rereads the \
            folder and adds or removes pods to match. SIGTERM or SIGINT removes everything.

            Example: kproxy-sandbox up --manifests /tmp/demo/manifests --prefix kpdemo- --env-file /tmp/demo/env
            """)

    @OptionGroup var options: ManifestOptions

    @Option(help: "Namespace name prefix.")
    var prefix = "kpdemo-"

    @Option(name: .customLong("client"),
            help: "A client outside the cluster: NAME or NAME=IPV4 (repeatable; the first is the node's gateway).")
    var clients: [String] = ["client", "lb-allowed=198.51.100.7", "lb-denied=192.0.2.10"]

    @Option(name: .customLong("env-file"), help: "Write shell variables naming the namespaces here once ready; rewritten (GENERATION) after each change.")
    var envFile: String?

    @Option(name: .customLong("poll-ms"), help: "How often to reread the manifest folder.")
    var pollMs = 500

    func validate() throws {
        guard Cluster.isSafePrefix(prefix) else {
            throw ValidationError("--prefix must start with kp and end with - (e.g. kpdemo-), so that it cannot match other namespaces")
        }
    }

    func run() throws {
        // Signals are taken synchronously below; children get a clean mask from the harness.
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, s) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        if let reason = Cluster.unsupportedReason { throw ValidationError(reason) }
        Cluster.destroy(prefix: prefix)  // what an earlier sandbox of this name left behind
        let specs = clients.map { text -> ClientSpec in
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            return ClientSpec(parts[0], ipv4: parts.count > 1 ? parts[1] : nil)
        }
        let cluster = try Cluster.create(pods: [], clients: specs,
                                         options: ClusterOptions(nodeName: options.node, prefix: prefix))
        defer { cluster.destroy() }
        let sctp = kernelHasSCTP()
        if !sctp { say("note: this kernel has no SCTP; SCTP ports get no server") }

        var manifests = FollowedManifests(directory: options.manifests)
        _ = manifests.refresh()
        var plan = SandboxPlan(objects: manifests.objects, nodeName: options.node, sctp: sctp)
        try reconcile(cluster, to: plan, quiet: true)
        describe(cluster)
        var generation = 1
        try writeEnv(cluster, generation)

        while true {
            var ts = timespec(tv_sec: pollMs / 1000, tv_nsec: (pollMs % 1000) * 1_000_000)
            let sig = sigtimedwait(&signals, nil, &ts)
            if sig == SIGTERM || sig == SIGINT { break }
            if !manifests.refresh() && sig != SIGHUP { continue }
            let next = SandboxPlan(objects: manifests.objects, nodeName: options.node, sctp: sctp)
            guard next.pods != plan.pods else { continue }
            do {
                try reconcile(cluster, to: next, quiet: false)
                plan = next
                generation += 1
                try writeEnv(cluster, generation)
            } catch {
                FileHandle.standardError.write(Data("sandbox: \(error)\n".utf8))
            }
        }
        say("sandbox: removing \(prefix)*")
    }

    /// Adds the pods the plan has and the cluster lacks, removes the others (a pod whose ports
    /// changed is replaced).
    func reconcile(_ cluster: Cluster, to plan: SandboxPlan, quiet: Bool) throws {
        let wanted = Dictionary(uniqueKeysWithValues: plan.pods.map { ($0.name, $0) })
        for pod in cluster.pods {
            if let w = wanted[pod.name], w.tcp == pod.tcp, w.udp == pod.udp, w.sctp == pod.sctp { continue }
            try cluster.removePod(name: pod.name)
            if !quiet { say("- pod \(pod.name)") }
        }
        let existing = Set(cluster.pods.map(\.name))
        for p in plan.pods where !existing.contains(p.name) {
            try cluster.addPod(p.spec)
            if !quiet { say("+ pod \(p.name) on \(nodeName(cluster, p.placement)) \(ports(p))") }
        }
    }

    func nodeName(_ c: Cluster, _ p: Placement) -> String {
        p == .local ? c.options.nodeName : c.options.remoteNodeName
    }

    func ports(_ p: SandboxPlan.PodPlan) -> String {
        var parts: [String] = []
        if !p.tcp.isEmpty { parts.append("tcp " + p.tcp.map(String.init).joined(separator: ",")) }
        if !p.udp.isEmpty { parts.append("udp " + p.udp.map(String.init).joined(separator: ",")) }
        if !p.sctp.isEmpty { parts.append("sctp " + p.sctp.map(String.init).joined(separator: ",")) }
        return parts.isEmpty ? "(no server)" : parts.joined(separator: "; ")
    }

    func describe(_ c: Cluster) {
        say("sandbox \(c.prefix): node \(c.options.nodeName) in namespace \(c.node) (\(AddressPlan.nodeIPv4), \(AddressPlan.nodeIPv6))")
        say("  remote node \(c.options.remoteNodeName) in \(c.remoteNode) (\(AddressPlan.remoteNodeIPv4)); other nodes' pods live there too")
        for client in c.clients {
            say("  client \(client.name) in \(client.namespace) (\(client.ipv4), \(client.ipv6))")
        }
        for pod in c.pods {
            let p = SandboxPlan.PodPlan(name: pod.name, placement: pod.placement, address: pod.ips.first ?? "",
                                        tcp: pod.tcp, udp: pod.udp, sctp: pod.sctp)
            say("  pod \(pod.name) on \(nodeName(c, pod.placement)): \(ports(p))")
        }
    }

    /// Shell variables for the demo script: which namespace is which.
    func writeEnv(_ c: Cluster, _ generation: Int) throws {
        guard let envFile else { return }
        var lines = [
            "GENERATION=\(generation)",
            "NODE_NS=\(c.node.name)",
            "REMOTE_NS=\(c.remoteNode.name)",
            "NODE_IP=\(AddressPlan.nodeIPv4)",
            "NODE_IP6=\(AddressPlan.nodeIPv6)",
        ]
        for (i, client) in c.clients.enumerated() {
            let key = client.name.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }
            lines.append("CLIENT_\(String(key))_NS=\(client.namespace.name)")
            if i == 0 { lines.append("CLIENT_NS=\(client.namespace.name)") }
        }
        // A local pod per family, to show traffic from inside the cluster.
        if let pod = c.pods.first(where: { $0.placement == .local && $0.ipv4 != nil && !$0.tcp.isEmpty }) {
            lines.append("POD_NS=\(pod.namespace.name)")
            lines.append("POD_NAME='\(pod.name)'")
        }
        if let pod = c.pods.first(where: { $0.placement == .local && $0.ipv6 != nil && !$0.tcp.isEmpty }) {
            lines.append("POD6_NS=\(pod.namespace.name)")
            lines.append("POD6_NAME='\(pod.name)'")
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: envFile, atomically: true, encoding: .utf8)
    }
}
