import NetworkTypes

/// discovery.k8s.io/v1 EndpointSlice (v1beta1 decodes too: its `topology` map stands in for `nodeName`/`zone`).
public struct EndpointSlice: Codable, Sendable, Hashable {
    public var apiVersion: String?
    public var kind: String?
    public var metadata: ObjectMeta
    public var addressType: AddressType
    public var endpoints: [SliceEndpoint]?
    public var ports: [EndpointPort]?

    public init(metadata: ObjectMeta, addressType: AddressType, endpoints: [SliceEndpoint]?, ports: [EndpointPort]?) {
        self.apiVersion = "discovery.k8s.io/v1"
        self.kind = "EndpointSlice"
        self.metadata = metadata
        self.addressType = addressType
        self.endpoints = endpoints
        self.ports = ports
    }

    public var id: NamespacedName {
        NamespacedName(namespace: metadata.namespace ?? "default", name: metadata.name)
    }

    /// The Service this slice belongs to (from the `kubernetes.io/service-name` label).
    public var serviceID: NamespacedName? {
        guard let svc = metadata.labels?[WellKnownLabels.serviceName], !svc.isEmpty else { return nil }
        return NamespacedName(namespace: metadata.namespace ?? "default", name: svc)
    }
}

public enum AddressType: String, KubeEnum {
    case ipv4 = "IPv4"
    case ipv6 = "IPv6"
    case fqdn = "FQDN"

    public var family: IPFamily? {
        switch self {
        case .ipv4: return .ipv4
        case .ipv6: return .ipv6
        case .fqdn: return nil
        }
    }
}

public struct SliceEndpoint: Codable, Sendable, Hashable {
    public var addresses: [String]
    public var conditions: EndpointConditions?
    public var hostname: String?
    public var nodeName: String?
    public var zone: String?
    public var hints: EndpointHints?
    /// discovery.k8s.io/v1beta1 only.
    public var topology: [String: String]?

    public init(addresses: [String], conditions: EndpointConditions? = nil, nodeName: String? = nil,
                zone: String? = nil, hints: EndpointHints? = nil) {
        self.addresses = addresses
        self.conditions = conditions
        self.nodeName = nodeName
        self.zone = zone
        self.hints = hints
    }

    /// `nodeName`, or the v1beta1 topology's hostname.
    public var effectiveNodeName: String? { nodeName ?? topology?[WellKnownLabels.hostname] }
    /// `zone`, or the v1beta1 topology's zone.
    public var effectiveZone: String? { zone ?? topology?[WellKnownLabels.zone] }

    /// Kubernetes' rules: an unset `ready` means ready; an unset `serving` means what `ready` says;
    /// an unset `terminating` means not terminating.
    public var isReady: Bool { conditions?.ready ?? true }
    public var isServing: Bool { conditions?.serving ?? isReady }
    public var isTerminating: Bool { conditions?.terminating ?? false }
}

public struct EndpointConditions: Codable, Sendable, Hashable {
    public var ready: Bool?
    public var serving: Bool?
    public var terminating: Bool?

    public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
        self.ready = ready
        self.serving = serving
        self.terminating = terminating
    }
}

public struct EndpointHints: Codable, Sendable, Hashable {
    public var forZones: [ZoneHint]?
    public var forNodes: [NodeHint]?

    public init(forZones: [String]) {
        self.forZones = forZones.map { ZoneHint(name: $0) }
    }
}

public struct ZoneHint: Codable, Sendable, Hashable {
    public var name: String
}

public struct NodeHint: Codable, Sendable, Hashable {
    public var name: String
}

public struct EndpointPort: Codable, Sendable, Hashable {
    public var name: String?
    public var `protocol`: L4Protocol?
    public var port: Int?
    public var appProtocol: String?

    public init(name: String? = nil, protocol: L4Protocol? = nil, port: Int?) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
    }
}
