import ArgumentParser
import Logging
import Controller
import Foundation
import KubeObjects
import ObjectSources
import ServiceTable
import Yams

struct TableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "Show the service table: every service port and the endpoints this node would use.",
        discussion: """
            Reads Services, EndpointSlices and Nodes from a folder of manifests or, once, from a \
            Kubernetes API server (--kubeconfig; in a pod, its service account), and prints, for every \
            service port, what this node would program. Endpoints marked * in the wide output are the \
            ones this node sends traffic to. Problems in the manifests are reported on standard error \
            with file and line; the valid objects still show.

            Examples:
              kproxy table --manifests deploy/examples --node node-a -o wide
              kproxy table --kubeconfig ~/.kube/config --node node-a
              kproxy table --agent http://127.0.0.1:10249 -o wide     # what a running agent holds
            """)

    @Option(name: .long, help: "A folder of YAML/JSON manifests (Services, EndpointSlices, Nodes).")
    var manifests: String?

    @Option(help: "A kubeconfig for the Kubernetes API server to read the objects from.")
    var kubeconfig: String?

    @Option(help: "Read the table a running agent holds, from its metrics address (e.g. \(AgentClient.defaultURL)).")
    var agent: String?

    @OptionGroup var node: NodeNameOptions

    @Option(name: [.short, .long], help: "Output format: wide, json or yaml (default: a table).")
    var output: OutputFormat?

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case wide, json, yaml
    }

    func run() async throws {
        if let agent {
            guard manifests == nil, kubeconfig == nil else {
                throw ValidationError("--agent reads a running agent's table: it excludes --manifests and --kubeconfig")
            }
            let query = output.map { "?output=\($0.rawValue)" } ?? ""
            let (code, body) = try await AgentClient(agent).get("/debug/table" + query)
            guard code == 200 else { throw ValidationError("\(agent)/debug/table answered \(code): \(body)") }
            print(body, terminator: body.hasSuffix("\n") ? "" : "\n")
            return
        }
        let choice = try SourceChoice.resolve(manifests: manifests, kubeconfig: kubeconfig, fileKubeconfig: nil)
        let table: ServiceTable
        if case .manifests(let directory) = choice {
            table = try ManifestTable.load(directory: directory, nodeName: node.resolved)
        } else {
            table = try await APITable.load(try choice.clientConfig()!, nodeName: node.resolved)
        }
        switch output {
        case nil: print(TableText.render(table), terminator: "")
        case .wide: print(TableText.render(table, wide: true), terminator: "")
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(TableDocument(table)), as: UTF8.self))
        case .yaml:
            print(try YAMLEncoder().encode(TableDocument(table)), terminator: "")
        }
    }
}

/// `--node` (alias `--hostname-override`, kube-proxy's name): the node whose view is built.
struct NodeNameOptions: ParsableArguments {
    @Option(name: [.customLong("node"), .customLong("hostname-override")],
            help: "This node's name (default: $NODE_NAME, else the host name).")
    var name: String?

    var resolved: String {
        if let name, !name.isEmpty { return name.lowercased() }
        if let env = ProcessInfo.processInfo.environment["NODE_NAME"], !env.isEmpty { return env.lowercased() }
        return ProcessInfo.processInfo.hostName.lowercased()
    }
}

/// Builds the table once from a manifest folder, reporting problems on standard error.
enum ManifestTable {
    static func load(directory: String, nodeName: String) throws -> ServiceTable {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("--manifests \(directory): not a readable directory")
        }
        let source = ManifestSource(directory: directory, logger: .init(label: "kproxy.source.manifests") { _ in
            SwiftLogNoOpLogHandler()
        })
        let events = source.rescan()
        for problem in source.problems {
            FileHandle.standardError.write(Data("warning: \(problem)\n".utf8))
        }
        var builder = TableBuilder(nodeName: nodeName)
        for event in events {
            if case .upsert(.service(let svc)) = event, let reason = TableBuilder.skipReason(svc),
               reason.hasPrefix("no cluster IP") {
                FileHandle.standardError.write(Data("warning: Service \(svc.id) skipped: \(reason)\n".utf8))
            }
            let problems = builder.apply(event)
            for p in problems { FileHandle.standardError.write(Data("warning: \(event.id): \(p)\n".utf8)) }
        }
        return builder.build().table
    }
}

/// Builds the table once from a Kubernetes API server: the source's complete initial state.
enum APITable {
    static func load(_ config: KubeClientConfig, nodeName: String, timeout: Duration = .seconds(30)) async throws -> ServiceTable {
        var logger = Logger(label: "kproxy.source.api") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        let source = try KubeAPISource(config: config, options: KubeAPISourceOptions(nodeName: nodeName), logger: logger)
        let events: [ObjectEvent]? = await withTaskGroup(of: [ObjectEvent]?.self) { group in
            group.addTask {
                for await first in source.watch() { return first }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let events else {
            throw ValidationError("no answer from \(config.server) within \(timeout) (see the warnings above)")
        }
        var builder = TableBuilder(nodeName: nodeName)
        for event in events {
            for p in builder.apply(event) { FileHandle.standardError.write(Data("warning: \(event.id): \(p)\n".utf8)) }
        }
        return builder.build().table
    }
}
