import ArgumentParser

struct TargetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "targets",
        abstract: "List every address a client can reach a service on, one per line, tab-separated.",
        discussion: """
            Columns: service port, kind (ClusterIP, NodePort, ExternalIP, LoadBalancer), address, port, \
            protocol (tcp, udp, sctp). Node ports are on the sandbox node's address.

            Example: kproxy-sandbox targets --manifests deploy/examples
            """)

    @OptionGroup var options: ManifestOptions

    func run() throws {
        let objects = options.objects()
        let plan = SandboxPlan(objects: objects, nodeName: options.node, sctp: true)
        for t in plan.targets {
            print([t.service, t.kind, t.address, String(t.port), t.proto.lowercased].joined(separator: "\t"))
        }
    }
}
