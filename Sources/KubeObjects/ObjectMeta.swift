/// The parts of `metadata` kube-proxy looks at. Unknown fields (managedFields, ownerReferences, …) are ignored.
public struct ObjectMeta: Codable, Sendable, Hashable {
    public var name: String
    public var namespace: String?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var resourceVersion: String?
    public var uid: String?
    public var deletionTimestamp: String?

    private enum CodingKeys: String, CodingKey {
        case name, namespace, labels, annotations, resourceVersion, uid, deletionTimestamp
    }

    /// Annotations are kept only when kproxy reads them (`endpoints.kubernetes.io/…`,
    /// `service.kubernetes.io/…`): others, such as kubectl's last-applied-configuration copy of
    /// the whole object, would cost memory for every object on a big cluster and change nothing.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        namespace = try c.decodeIfPresent(String.self, forKey: .namespace)
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels)
        let all = try c.decodeIfPresent([String: String].self, forKey: .annotations)
        let kept = all?.filter { (key: String, _) in Self.keptAnnotationPrefixes.contains { key.hasPrefix($0) } }
        annotations = kept?.isEmpty == false ? kept : nil
        resourceVersion = try c.decodeIfPresent(String.self, forKey: .resourceVersion)
        uid = try c.decodeIfPresent(String.self, forKey: .uid)
        deletionTimestamp = try c.decodeIfPresent(String.self, forKey: .deletionTimestamp)
    }

    public static let keptAnnotationPrefixes = ["endpoints.kubernetes.io/", "service.kubernetes.io/"]

    public init(name: String, namespace: String? = nil, labels: [String: String]? = nil,
                annotations: [String: String]? = nil, resourceVersion: String? = nil) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
        self.resourceVersion = resourceVersion
    }
}

/// `namespace/name`, the identity of a namespaced object (or just `name` for cluster-scoped ones).
public struct NamespacedName: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    public var description: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }

    public static func < (a: NamespacedName, b: NamespacedName) -> Bool {
        (a.namespace, a.name) < (b.namespace, b.name)
    }
}

/// The kinds of object kube-proxy (and so kproxy) reads.
public enum ObjectKind: String, Sendable, Hashable, Codable, Comparable, CaseIterable {
    case service = "Service"
    case endpointSlice = "EndpointSlice"
    case node = "Node"

    public static func < (a: ObjectKind, b: ObjectKind) -> Bool { a.rawValue < b.rawValue }

    /// The `apiVersion`s this kind is read from.
    public var apiVersions: Set<String> {
        switch self {
        case .service, .node: return ["v1"]
        case .endpointSlice: return ["discovery.k8s.io/v1", "discovery.k8s.io/v1beta1"]
        }
    }
}

/// Identifies one object across kinds: `Service default/web`.
public struct ObjectID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var kind: ObjectKind
    public var name: NamespacedName

    public init(kind: ObjectKind, name: NamespacedName) {
        self.kind = kind
        self.name = name
    }

    public var description: String { "\(kind.rawValue) \(name)" }

    public static func < (a: ObjectID, b: ObjectID) -> Bool { (a.kind, a.name) < (b.kind, b.name) }
}

/// Well-known label and annotation keys.
public enum WellKnownLabels {
    /// On an EndpointSlice: the Service it belongs to.
    public static let serviceName = "kubernetes.io/service-name"
    /// On a Service: handled by another proxy; kube-proxy (and kproxy) ignore it.
    public static let serviceProxyName = "service.kubernetes.io/service-proxy-name"
    /// On a Service: headless (`service.kubernetes.io/headless`), set by the EndpointSlice controller.
    public static let headless = "service.kubernetes.io/headless"
    /// On a Node: its zone.
    public static let zone = "topology.kubernetes.io/zone"
    /// On a Node: its hostname (also the v1beta1 EndpointSlice topology key for the node).
    public static let hostname = "kubernetes.io/hostname"
}
