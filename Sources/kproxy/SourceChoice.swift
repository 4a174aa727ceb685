import ArgumentParser
import Foundation
import KubeObjects
import Logging
import ObjectSources

/// Where objects come from: a manifest folder, or a Kubernetes API server reached through a
/// kubeconfig or, as kube-proxy does when given neither, the pod's service account (in-cluster).
enum SourceChoice: Sendable, CustomStringConvertible {
    case manifests(String)
    case kubeconfig(String)
    case inCluster

    /// `--manifests` and `--kubeconfig` exclude each other; the file's `clientConnection.kubeconfig`
    /// counts when no flag is given.
    static func resolve(manifests: String?, kubeconfig: String?, fileKubeconfig: String?) throws -> SourceChoice {
        if let manifests, kubeconfig != nil {
            throw ValidationError("--manifests \(manifests) and --kubeconfig exclude each other: choose one source")
        }
        if let manifests { return .manifests(manifests) }
        if let k = kubeconfig ?? fileKubeconfig, !k.isEmpty { return .kubeconfig(k) }
        return .inCluster
    }

    var description: String {
        switch self {
        case .manifests(let dir): return "manifests \(dir)"
        case .kubeconfig(let file): return "kubeconfig \(file)"
        case .inCluster: return "in-cluster service account"
        }
    }

    /// The API server's configuration (nil for manifests); reports a missing or broken kubeconfig,
    /// or the absence of a service account, as a usage error.
    func clientConfig() throws -> KubeClientConfig? {
        do {
            switch self {
            case .manifests: return nil
            case .kubeconfig(let file): return try KubeClientConfig.kubeconfig(file: file)
            case .inCluster: return try KubeClientConfig.inCluster()
            }
        } catch {
            if case .inCluster = self {
                throw ValidationError("no source: give --manifests DIR or --kubeconfig FILE, or run in a pod (\(error))")
            }
            throw ValidationError("--kubeconfig: \(error)")
        }
    }

    /// A stream whose first element is the complete state, then changes (what the agent consumes).
    func makeStream(nodeName: String, logger: Logger) throws -> @Sendable () -> AsyncStream<[ObjectEvent]> {
        if case .manifests(let dir) = self {
            let source = ManifestSource(directory: dir, logger: Logger(label: "kproxy.source.manifests"))
            return { source.watch() }
        }
        let source = try KubeAPISource(config: try clientConfig()!, options: KubeAPISourceOptions(nodeName: nodeName),
                                       logger: Logger(label: "kproxy.source.api"))
        return { source.watch() }
    }
}
