import NetworkTypes

/// How a service is exposed: kube-proxy programs ClusterIP for all, NodePorts for NodePort and
/// LoadBalancer, and ingress IPs for LoadBalancer.
public enum ServiceKind: String, Sendable, Hashable, Codable {
    case clusterIP = "ClusterIP"
    case nodePort = "NodePort"
    case loadBalancer = "LoadBalancer"
}

/// `Cluster` or `Local`: which endpoints traffic may reach.
public enum Policy: String, Sendable, Hashable, Codable {
    case cluster = "Cluster"
    case local = "Local"
}

/// Everything a data plane needs to program one service port on this node. Immutable value.
public struct ServicePortEntry: Sendable, Hashable, Codable {
    public var name: ServicePortName
    public var type: ServiceKind
    /// One per family, primary first (a dual-stack service has two).
    public var clusterIPs: [IPAddress]
    public var port: UInt16
    /// Set for NodePort and LoadBalancer services (unless node ports are not allocated).
    public var nodePort: UInt16?
    public var externalIPs: [IPAddress]
    /// LoadBalancer ingress IPs in VIP mode (`status.loadBalancer.ingress[].ip`).
    public var loadBalancerIPs: [IPAddress]
    /// Only these client ranges may reach the load balancer IPs; empty: everyone.
    public var loadBalancerSourceRanges: [CIDR]
    /// ClientIP session affinity timeout in seconds; `nil` when affinity is None.
    public var sessionAffinityTimeout: Int?
    public var externalTrafficPolicy: Policy
    public var internalTrafficPolicy: Policy
    public var healthCheckNodePort: UInt16?
    public var trafficDistribution: String?
    /// Every endpoint known for this port (deduplicated across slices), sorted.
    public var endpoints: [Endpoint]
    /// The endpoints that traffic under a `Cluster` policy goes to (kube-proxy's clusterEndpoints).
    public var clusterEndpoints: [Endpoint]
    /// The endpoints that traffic under a `Local` policy goes to (kube-proxy's localEndpoints).
    public var localEndpoints: [Endpoint]

    public init(name: ServicePortName, type: ServiceKind = .clusterIP, clusterIPs: [IPAddress], port: UInt16,
                nodePort: UInt16? = nil, externalIPs: [IPAddress] = [], loadBalancerIPs: [IPAddress] = [],
                loadBalancerSourceRanges: [CIDR] = [], sessionAffinityTimeout: Int? = nil,
                externalTrafficPolicy: Policy = .cluster, internalTrafficPolicy: Policy = .cluster,
                healthCheckNodePort: UInt16? = nil, trafficDistribution: String? = nil,
                endpoints: [Endpoint] = [], clusterEndpoints: [Endpoint] = [], localEndpoints: [Endpoint] = []) {
        self.name = name
        self.type = type
        self.clusterIPs = clusterIPs
        self.port = port
        self.nodePort = nodePort
        self.externalIPs = externalIPs
        self.loadBalancerIPs = loadBalancerIPs
        self.loadBalancerSourceRanges = loadBalancerSourceRanges
        self.sessionAffinityTimeout = sessionAffinityTimeout
        self.externalTrafficPolicy = externalTrafficPolicy
        self.internalTrafficPolicy = internalTrafficPolicy
        self.healthCheckNodePort = healthCheckNodePort
        self.trafficDistribution = trafficDistribution
        self.endpoints = endpoints
        self.clusterEndpoints = clusterEndpoints
        self.localEndpoints = localEndpoints
    }

    public var `protocol`: L4Protocol { name.protocol }

    /// Reachable from outside the cluster: a node port, an external IP or a load balancer IP.
    public var isExternallyAccessible: Bool {
        nodePort != nil || !externalIPs.isEmpty || !loadBalancerIPs.isEmpty
    }

    /// External traffic (node port, external IP, LB IP) is limited to local endpoints.
    public var externalPolicyIsLocal: Bool { externalTrafficPolicy == .local && isExternallyAccessible }
    /// Traffic to the cluster IP is limited to local endpoints.
    public var internalPolicyIsLocal: Bool { internalTrafficPolicy == .local }

    /// The endpoints traffic to the cluster IP may use.
    public var internalEndpoints: [Endpoint] { internalPolicyIsLocal ? localEndpoints : clusterEndpoints }
    /// The endpoints external traffic may use.
    public var externalEndpoints: [Endpoint] { externalPolicyIsLocal ? localEndpoints : clusterEndpoints }

    /// Some endpoint anywhere in the cluster can serve this port; when false, traffic must be rejected.
    public var hasEndpoints: Bool { !clusterEndpoints.isEmpty || !localEndpoints.isEmpty }

    /// Endpoints this node sends any traffic to (union of cluster and local), sorted.
    public var usedEndpoints: [Endpoint] {
        if localEndpoints.isEmpty { return clusterEndpoints }
        if clusterEndpoints.isEmpty { return localEndpoints }
        return Array(Set(clusterEndpoints).union(localEndpoints)).sorted()
    }

    public var families: [IPFamily] { clusterIPs.map(\.family) }

    public func clusterIP(for family: IPFamily) -> IPAddress? { clusterIPs.first { $0.family == family } }
}

extension Array where Element == Endpoint {
    /// The endpoints of one address family.
    public func of(_ family: IPFamily) -> [Endpoint] { filter { $0.family == family } }
}

extension Array where Element == IPAddress {
    /// The addresses of one family.
    public func of(_ family: IPFamily) -> [IPAddress] { filter { $0.family == family } }
}
