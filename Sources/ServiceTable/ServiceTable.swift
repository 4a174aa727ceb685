import HashTreeCollections
import NetworkTypes

/// What this node is: its name, zone and addresses, as the table was built for it.
public struct NodeInfo: Sendable, Hashable, Codable {
    public var name: String
    public var zone: String?
    public var addresses: [IPAddress]

    public init(name: String, zone: String? = nil, addresses: [IPAddress] = []) {
        self.name = name
        self.zone = zone
        self.addresses = addresses
    }
}

/// The immutable, versioned set of service ports this node programs, keyed by service port name.
/// Built on a persistent hash trie, so a new version that changes one service shares everything
/// else with the old one and costs work in proportion to the change.
public struct ServiceTable: Sendable {
    public let version: UInt64
    public let node: NodeInfo
    public let entries: TreeDictionary<ServicePortName, ServicePortEntry>

    public init(version: UInt64, node: NodeInfo, entries: TreeDictionary<ServicePortName, ServicePortEntry>) {
        self.version = version
        self.node = node
        self.entries = entries
    }

    public init(version: UInt64 = 1, node: NodeInfo, entries: [ServicePortEntry]) {
        var d = TreeDictionary<ServicePortName, ServicePortEntry>()
        for e in entries { d[e.name] = e }
        self.init(version: version, node: node, entries: d)
    }

    public static func empty(node: NodeInfo) -> ServiceTable {
        ServiceTable(version: 0, node: node, entries: TreeDictionary())
    }

    public subscript(name: ServicePortName) -> ServicePortEntry? { entries[name] }

    public var count: Int { entries.count }

    /// Every entry, sorted by name: for display and for full syncs that want a stable order.
    public var sortedEntries: [ServicePortEntry] { entries.values.sorted { $0.name < $1.name } }
}
