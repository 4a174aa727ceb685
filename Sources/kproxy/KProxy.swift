import ArgumentParser

/// `kproxy`: a kube-proxy replacement. Each subcommand lives in its own file.
@main
struct KProxy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kproxy",
        abstract: "A kube-proxy replacement: programs this node so that Service traffic reaches healthy pods.",
        discussion: """
            kproxy watches Services and EndpointSlices (from a Kubernetes API server, or from a folder \
            of manifests) and keeps the node's nftables rules in step with them.
            """,
        subcommands: [
            TableCommand.self,
            RunCommand.self,
            StatusCommand.self,
            RulesCommand.self,
            CleanupCommand.self,
            BenchCommand.self,
        ]
    )
}
