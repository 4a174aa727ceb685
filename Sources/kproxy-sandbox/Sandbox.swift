#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import KubeObjects
import Logging
import NetnsHarness
import ObjectSources

/// `kproxy-sandbox`: the demo's cluster in network namespaces, with a pod for every endpoint of a
/// manifest folder. One subcommand per file.
@main
struct Sandbox: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kproxy-sandbox",
        abstract: "A sandbox node in network namespaces with a pod for every endpoint in a manifest folder.",
        discussion: """
            `up` builds the node (where `kproxy run` goes), the pods and the clients, and keeps the pods \
            in step with the folder until SIGTERM; `targets` lists the addresses to send traffic to; \
            `scale` adds endpoints to a service by writing one more EndpointSlice; `down` removes what a \
            sandbox left behind. scripts/demo.sh drives them.
            """,
        subcommands: [UpCommand.self, TargetsCommand.self, ScaleCommand.self, DownCommand.self])
}

/// `--manifests` and `--node`, shared by the subcommands that read the folder.
struct ManifestOptions: ParsableArguments {
    @Option(help: "The manifest folder (Services, EndpointSlices, Nodes).")
    var manifests: String

    @Option(name: [.customLong("node"), .customLong("hostname-override")], help: "The node kproxy runs as.")
    var node = "node-a"

    /// Reads the folder once; problems go to stderr.
    func objects() -> [KubeObject] {
        var followed = FollowedManifests(directory: manifests)
        _ = followed.refresh()
        return followed.objects
    }
}

/// The objects of a manifest folder as the sandbox follows them: the source reports changes (it
/// keeps no objects), the sandbox applies them to its own copy.
struct FollowedManifests {
    let source: ManifestSource
    private var byID: [ObjectID: KubeObject] = [:]
    private var reported = false

    init(directory: String) {
        source = ManifestSource(directory: directory, logger: Logger(label: "sandbox") { _ in SwiftLogNoOpLogHandler() })
    }

    /// Every object, in identity order.
    var objects: [KubeObject] { byID.keys.sorted().map { byID[$0]! } }

    /// Rescans the folder; returns whether anything changed. The first read's problems go to stderr.
    mutating func refresh() -> Bool {
        let events = source.rescan()
        for event in events {
            switch event {
            case .upsert(let object): byID[object.id] = object
            case .delete(let id): byID[id] = nil
            }
        }
        if !reported {
            reported = true
            for problem in source.problems { FileHandle.standardError.write(Data("warning: \(problem)\n".utf8)) }
        }
        return !events.isEmpty
    }
}

/// Whether this kernel has SCTP (the demo machine's does not).
func kernelHasSCTP() -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 132)
    if fd >= 0 { close(fd) }
    return fd >= 0
}

func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
