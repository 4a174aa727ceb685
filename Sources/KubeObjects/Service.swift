import NetworkTypes

/// core/v1 Service, the fields kube-proxy uses.
public struct Service: Codable, Sendable, Hashable {
    public var apiVersion: String?
    public var kind: String?
    public var metadata: ObjectMeta
    public var spec: ServiceSpec
    public var status: ServiceStatus?

    public init(metadata: ObjectMeta, spec: ServiceSpec, status: ServiceStatus? = nil) {
        self.apiVersion = "v1"
        self.kind = "Service"
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    public var id: NamespacedName {
        NamespacedName(namespace: metadata.namespace ?? "default", name: metadata.name)
    }
}

public enum ServiceType: String, KubeEnum {
    case clusterIP = "ClusterIP"
    case nodePort = "NodePort"
    case loadBalancer = "LoadBalancer"
    case externalName = "ExternalName"
}

public enum ServiceAffinity: String, KubeEnum {
    case none = "None"
    case clientIP = "ClientIP"
}

public enum TrafficPolicy: String, KubeEnum {
    case cluster = "Cluster"
    case local = "Local"
}

public enum IPFamilyPolicy: String, KubeEnum {
    case singleStack = "SingleStack"
    case preferDualStack = "PreferDualStack"
    case requireDualStack = "RequireDualStack"
}

public struct ServiceSpec: Codable, Sendable, Hashable {
    public var type: ServiceType?
    public var clusterIP: String?
    public var clusterIPs: [String]?
    public var ipFamilies: [IPFamily]?
    public var ipFamilyPolicy: IPFamilyPolicy?
    public var ports: [ServicePort]?
    public var selector: [String: String]?
    public var externalIPs: [String]?
    public var externalName: String?
    public var sessionAffinity: ServiceAffinity?
    public var sessionAffinityConfig: SessionAffinityConfig?
    public var externalTrafficPolicy: TrafficPolicy?
    public var internalTrafficPolicy: TrafficPolicy?
    public var loadBalancerIP: String?
    public var loadBalancerSourceRanges: [String]?
    public var healthCheckNodePort: Int?
    public var trafficDistribution: String?
    public var publishNotReadyAddresses: Bool?

    public init(type: ServiceType? = nil, clusterIP: String? = nil, clusterIPs: [String]? = nil,
                ports: [ServicePort]? = nil) {
        self.type = type
        self.clusterIP = clusterIP
        self.clusterIPs = clusterIPs
        self.ports = ports
    }

    /// The cluster IPs in the order the API gives them: `clusterIPs` when set, else `clusterIP`.
    /// Empty for headless (`None`) and for services without one.
    public var allClusterIPs: [String] {
        if let ips = clusterIPs, !ips.isEmpty { return ips.filter { $0 != "None" && !$0.isEmpty } }
        if let ip = clusterIP, ip != "None", !ip.isEmpty { return [ip] }
        return []
    }

    public var isHeadless: Bool { clusterIP == "None" || clusterIPs?.first == "None" }
    public var effectiveType: ServiceType { type ?? .clusterIP }
}

public struct ServicePort: Codable, Sendable, Hashable {
    public var name: String?
    public var `protocol`: L4Protocol?
    public var port: Int
    public var targetPort: IntOrString?
    public var nodePort: Int?
    public var appProtocol: String?

    public init(name: String? = nil, protocol: L4Protocol? = nil, port: Int,
                targetPort: IntOrString? = nil, nodePort: Int? = nil) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
        self.targetPort = targetPort
        self.nodePort = nodePort
    }

    public var effectiveProtocol: L4Protocol { self.protocol ?? .tcp }
}

public struct SessionAffinityConfig: Codable, Sendable, Hashable {
    public var clientIP: ClientIPConfig?
    public init(clientIP: ClientIPConfig?) { self.clientIP = clientIP }
}

public struct ClientIPConfig: Codable, Sendable, Hashable {
    public var timeoutSeconds: Int?
    public init(timeoutSeconds: Int?) { self.timeoutSeconds = timeoutSeconds }

    /// Kubernetes' default affinity timeout: three hours.
    public static let defaultTimeoutSeconds = 10800
}

public struct ServiceStatus: Codable, Sendable, Hashable {
    public var loadBalancer: LoadBalancerStatus?
    public init(loadBalancer: LoadBalancerStatus?) { self.loadBalancer = loadBalancer }
}

public struct LoadBalancerStatus: Codable, Sendable, Hashable {
    public var ingress: [LoadBalancerIngress]?
    public init(ingress: [LoadBalancerIngress]?) { self.ingress = ingress }
}

public struct LoadBalancerIngress: Codable, Sendable, Hashable {
    public var ip: String?
    public var hostname: String?
    /// `VIP` (default) or `Proxy`: with `Proxy`, kube-proxy does not program the IP.
    public var ipMode: String?
    public init(ip: String?, hostname: String? = nil, ipMode: String? = nil) {
        self.ip = ip
        self.hostname = hostname
        self.ipMode = ipMode
    }
}
