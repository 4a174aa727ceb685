import ServiceTable

/// Which endpoints a service port may use on this node: kube-proxy's `CategorizeEndpoints`,
/// shared by every mode. Pure: the same inputs always give the same answer.
public enum EndpointSelection {
    public struct Result: Equatable, Sendable {
        /// For traffic under a `Cluster` policy.
        public var cluster: [Endpoint]
        /// For traffic under a `Local` policy.
        public var local: [Endpoint]
        /// Whether any usable endpoint exists anywhere (false: traffic must be rejected).
        public var hasAnyEndpoints: Bool
    }

    /// What the policies of a service port need from the selection.
    public struct Policies: Sendable {
        public var internalLocal: Bool
        public var externalLocal: Bool
        public var externallyAccessible: Bool

        public init(internalLocal: Bool, externalLocal: Bool, externallyAccessible: Bool) {
            self.internalLocal = internalLocal
            self.externalLocal = externalLocal
            self.externallyAccessible = externallyAccessible
        }

        /// Some traffic uses cluster-wide endpoints: internal policy Cluster, or any external
        /// traffic at all (even under external policy Local, pods on this node short-circuit to
        /// cluster endpoints).
        public var usesClusterEndpoints: Bool { !internalLocal || externallyAccessible }
        /// Some traffic uses node-local endpoints.
        public var usesLocalEndpoints: Bool { internalLocal || (externalLocal && externallyAccessible) }
    }

    /// Selects endpoints of one address family (callers split families first, as kube-proxy runs
    /// one proxier per family). `zone` is this node's `topology.kubernetes.io/zone`.
    public static func categorize(_ endpoints: [Endpoint], policies: Policies, zone: String?) -> Result {
        var cluster: [Endpoint] = []
        var local: [Endpoint] = []
        var hasAny = false

        if policies.usesClusterEndpoints {
            let useHints = topologyHintsApply(endpoints, zone: zone)
            cluster = endpoints.filter { ep in
                ep.ready && (!useHints || ep.zoneHints.contains(zone ?? ""))
            }
            // No ready endpoint anywhere (topology was already given up if its zone had none):
            // fall back to endpoints that still serve while terminating.
            if cluster.isEmpty {
                cluster = endpoints.filter { $0.serving && $0.terminating }
            }
            hasAny = !cluster.isEmpty
        }

        guard policies.usesLocalEndpoints else {
            return Result(cluster: cluster, local: [], hasAnyEndpoints: hasAny)
        }

        var hasLocalReady = false
        var hasLocalServingTerminating = false
        for ep in endpoints {
            if ep.ready {
                hasAny = true
                if ep.isLocal { hasLocalReady = true }
            } else if ep.serving && ep.terminating {
                hasAny = true
                if ep.isLocal { hasLocalServingTerminating = true }
            }
        }
        if hasLocalReady {
            local = endpoints.filter { $0.isLocal && $0.ready }
        } else if hasLocalServingTerminating {
            local = endpoints.filter { $0.isLocal && $0.serving && $0.terminating }
        }
        return Result(cluster: cluster, local: local, hasAnyEndpoints: hasAny)
    }

    /// Topology hints are honoured only when every ready endpoint carries zone hints and at least
    /// one is hinted for this node's zone; otherwise they are ignored, as kube-proxy does.
    public static func topologyHintsApply(_ endpoints: [Endpoint], zone: String?) -> Bool {
        var sawReady = false
        var hasEndpointForZone = false
        for ep in endpoints where ep.ready {
            sawReady = true
            if ep.zoneHints.isEmpty { return false }
            if let zone, ep.zoneHints.contains(zone) { hasEndpointForZone = true }
        }
        return sawReady && hasEndpointForZone
    }
}
