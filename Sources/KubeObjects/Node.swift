/// core/v1 Node: kube-proxy reads its labels (zone) and addresses.
public struct Node: Codable, Sendable, Hashable {
    public var apiVersion: String?
    public var kind: String?
    public var metadata: ObjectMeta
    public var status: NodeStatus?

    public init(metadata: ObjectMeta, status: NodeStatus? = nil) {
        self.apiVersion = "v1"
        self.kind = "Node"
        self.metadata = metadata
        self.status = status
    }

    public var zone: String? { metadata.labels?[WellKnownLabels.zone] }
}

public struct NodeStatus: Codable, Sendable, Hashable {
    public var addresses: [NodeAddress]?
    public init(addresses: [NodeAddress]?) { self.addresses = addresses }
}

public struct NodeAddress: Codable, Sendable, Hashable {
    public var type: String
    public var address: String
    public init(type: String, address: String) {
        self.type = type
        self.address = address
    }
}
