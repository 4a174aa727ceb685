import Foundation
import Yams

/// kube-proxy's configuration file (`kubeproxy.config.k8s.io/v1alpha1`, kind `KubeProxyConfiguration`),
/// the fields kproxy honours. Decoding is strict: a field kube-proxy does not know is refused with its
/// path, as kube-proxy does; a known field kproxy does not use is reported so the operator knows.
public struct KubeProxyConfiguration: Sendable, Equatable {
    public var hostnameOverride: String?
    public var mode: String?
    public var clusterCIDR: String?
    public var nodePortAddresses: [String]?
    public var healthzBindAddress: String?
    public var metricsBindAddress: String?
    public var kubeconfig: String?
    public var masqueradeAll: Bool?
    public var syncPeriod: String?
    public var minSyncPeriod: String?
    public var loggingFormat: String?
    public var verbosity: Int?
    /// Known kube-proxy fields that kproxy accepts but does not act on (e.g. `conntrack.maxPerCore`).
    public var ignoredFields: [String] = []

    public init() {}

    public struct Problem: Error, CustomStringConvertible, Equatable {
        public var file: String
        public var field: String
        public var message: String
        public var description: String { "\(file): \(field): \(message)" }
    }

    /// Every field of v1alpha1, as a tree: a leaf is `true`; a nested object lists its own fields.
    /// Fields whose values are free-form maps (`featureGates`, `logging.options`) are leaves.
    nonisolated(unsafe) private static let schema: [String: Any] = [
        "apiVersion": true, "kind": true,
        "featureGates": true,
        "clientConnection": ["kubeconfig": true, "acceptContentTypes": true, "contentType": true, "qps": true, "burst": true],
        "logging": ["format": true, "flushFrequency": true, "verbosity": true, "vmodule": true, "options": true],
        "hostnameOverride": true, "bindAddress": true, "healthzBindAddress": true, "metricsBindAddress": true,
        "bindAddressHardFail": true, "enableProfiling": true, "showHiddenMetricsForVersion": true,
        "mode": true,
        "iptables": ["masqueradeBit": true, "masqueradeAll": true, "localhostNodePorts": true,
                     "syncPeriod": true, "minSyncPeriod": true],
        "ipvs": ["syncPeriod": true, "minSyncPeriod": true, "scheduler": true, "excludeCIDRs": true,
                 "strictARP": true, "tcpTimeout": true, "tcpFinTimeout": true, "udpTimeout": true],
        "nftables": ["masqueradeBit": true, "masqueradeAll": true, "syncPeriod": true, "minSyncPeriod": true],
        "winkernel": ["networkName": true, "sourceVip": true, "enableDSR": true, "rootHnsEndpointName": true,
                      "forwardHealthCheckVip": true],
        "detectLocalMode": true,
        "detectLocal": ["bridgeInterface": true, "interfaceNamePrefix": true],
        "clusterCIDR": true, "nodePortAddresses": true, "oomScoreAdj": true,
        "conntrack": ["maxPerCore": true, "min": true, "tcpEstablishedTimeout": true, "tcpCloseWaitTimeout": true,
                      "tcpBeLiberal": true, "udpTimeout": true, "udpStreamTimeout": true],
        "configSyncPeriod": true, "portRange": true, "windowsRunAsService": true,
        "syncPeriod": true, "minSyncPeriod": true,
    ]

    /// The fields kproxy acts on; any other field that is set is reported in `ignoredFields`.
    private static let used: Set<String> = [
        "apiVersion", "kind", "hostnameOverride", "mode", "clusterCIDR", "nodePortAddresses",
        "healthzBindAddress", "metricsBindAddress", "clientConnection.kubeconfig",
        "iptables.masqueradeAll", "nftables.masqueradeAll",
        "iptables.syncPeriod", "iptables.minSyncPeriod", "nftables.syncPeriod", "nftables.minSyncPeriod",
        "ipvs.syncPeriod", "ipvs.minSyncPeriod", "syncPeriod", "minSyncPeriod",
        "logging.format", "logging.verbosity",
    ]

    public static func load(file: String) throws -> KubeProxyConfiguration {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw Problem(file: file, field: "-", message: "cannot read the file")
        }
        return try parse(text, file: file)
    }

    public static func parse(_ text: String, file: String = "config") throws -> KubeProxyConfiguration {
        let root: Yams.Node
        do {
            guard let r = try Yams.compose(yaml: text) else { throw Problem(file: file, field: "-", message: "empty") }
            root = r
        } catch let p as Problem {
            throw p
        } catch {
            throw Problem(file: file, field: "-", message: "invalid YAML: \(error)")
        }
        guard case .mapping(let top) = root else { throw Problem(file: file, field: "-", message: "not an object") }
        var ignored: [String] = []
        try check(top, schema: schema, prefix: "", file: file, ignored: &ignored)

        func string(_ path: String) throws -> String? {
            guard let node = lookup(root, path) else { return nil }
            if node.null != nil { return nil }
            guard let s = node.string else { throw Problem(file: file, field: path, message: "expected a string") }
            return s
        }
        guard try string("kind") == "KubeProxyConfiguration" else {
            throw Problem(file: file, field: "kind", message: "expected KubeProxyConfiguration")
        }
        let api = try string("apiVersion")
        guard api == "kubeproxy.config.k8s.io/v1alpha1" else {
            throw Problem(file: file, field: "apiVersion",
                          message: "expected kubeproxy.config.k8s.io/v1alpha1, got \(api ?? "nothing")")
        }
        var c = KubeProxyConfiguration()
        c.hostnameOverride = try string("hostnameOverride")
        c.mode = try string("mode")
        c.clusterCIDR = try string("clusterCIDR")
        c.healthzBindAddress = try string("healthzBindAddress")
        c.metricsBindAddress = try string("metricsBindAddress")
        c.kubeconfig = try string("clientConnection.kubeconfig")
        c.loggingFormat = try string("logging.format")
        if let v = lookup(root, "logging.verbosity"), v.null == nil {
            guard let i = v.int else { throw Problem(file: file, field: "logging.verbosity", message: "expected an integer") }
            c.verbosity = i
        }
        if let n = lookup(root, "nodePortAddresses"), n.null == nil {
            guard case .sequence(let seq) = n else {
                throw Problem(file: file, field: "nodePortAddresses", message: "expected a list")
            }
            c.nodePortAddresses = try seq.enumerated().map { i, item in
                guard let s = item.string else {
                    throw Problem(file: file, field: "nodePortAddresses[\(i)]", message: "expected a string")
                }
                return s
            }
        }
        // The mode's own section decides masquerading and sync periods; the top-level periods (1.30+) win.
        let section = (c.mode?.isEmpty == false ? c.mode! : "nftables")
        for name in [section, "iptables"] {
            if c.masqueradeAll == nil, let b = lookup(root, "\(name).masqueradeAll"), b.null == nil {
                guard let v = b.bool else { throw Problem(file: file, field: "\(name).masqueradeAll", message: "expected true or false") }
                c.masqueradeAll = v
            }
            c.syncPeriod = try c.syncPeriod ?? string("\(name).syncPeriod")
            c.minSyncPeriod = try c.minSyncPeriod ?? string("\(name).minSyncPeriod")
        }
        c.syncPeriod = try string("syncPeriod") ?? c.syncPeriod
        c.minSyncPeriod = try string("minSyncPeriod") ?? c.minSyncPeriod
        c.ignoredFields = ignored.filter { !used.contains($0) }
        return c
    }

    private static func lookup(_ root: Yams.Node, _ path: String) -> Yams.Node? {
        var node: Yams.Node? = root
        for key in path.split(separator: ".") { node = node?[String(key)] }
        return node
    }

    private static func check(_ mapping: Yams.Node.Mapping, schema: [String: Any], prefix: String, file: String,
                              ignored: inout [String]) throws {
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { continue }
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
            guard let spec = schema[key] else {
                throw Problem(file: file, field: path, message: "unknown field (not a KubeProxyConfiguration v1alpha1 setting)")
            }
            if let nested = spec as? [String: Any] {
                if value.null != nil { continue }
                guard case .mapping(let m) = value else {
                    throw Problem(file: file, field: path, message: "expected an object")
                }
                try check(m, schema: nested, prefix: path, file: file, ignored: &ignored)
            } else if value.null == nil {
                ignored.append(path)
            }
        }
    }
}
