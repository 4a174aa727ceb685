import NetworkTypes

/// One step for a data plane: the table to reach, the table it is coming from, and what changed.
public struct TableUpdate: Sendable {
    /// The table the data plane last applied successfully (nil at start).
    public var previous: ServiceTable?
    public var current: ServiceTable
    /// What changed since `previous`; nil asks for a full sync (start, periodic repair, after a failure).
    public var diff: TableDiff?

    public init(previous: ServiceTable?, current: ServiceTable, diff: TableDiff?) {
        self.previous = previous
        self.current = current
        self.diff = diff
    }

    public var isFullSync: Bool { diff == nil || previous == nil }

    /// What an incremental update changes, entry by entry: for each touched name, the entry
    /// before (nil: added) and after (nil: removed). Nil for a full sync, where a follower starts
    /// over from `current`.
    public var changedEntries: [(before: ServicePortEntry?, after: ServicePortEntry?)]? {
        guard let previous, let diff else { return nil }
        return diff.touched.map { (previous[$0], current[$0]) }
    }
}

/// Node-wide settings every mode honours, named as kube-proxy names them.
public struct ProxySettings: Sendable, Hashable, Codable {
    /// `--cluster-cidr`: traffic to a service from outside these ranges is masqueraded.
    public var clusterCIDRs: [CIDR]
    /// `--masquerade-all`: masquerade all traffic to services.
    public var masqueradeAll: Bool
    /// `--nodeport-addresses`: node ports answer on local addresses in these ranges (empty: all).
    public var nodePortAddresses: [CIDR]

    public init(clusterCIDRs: [CIDR] = [], masqueradeAll: Bool = false, nodePortAddresses: [CIDR] = []) {
        self.clusterCIDRs = clusterCIDRs
        self.masqueradeAll = masqueradeAll
        self.nodePortAddresses = nodePortAddresses
    }
}

/// A way of making the node forward service traffic (nftables, iptables, ipvs, userspace).
/// A data plane renders table updates into its kernel's language and applies them atomically;
/// it does no Kubernetes-level reasoning of its own.
public protocol DataPlane: Sendable {
    /// The mode's name, as `--proxy-mode` spells it.
    var mode: String { get }
    /// Makes the node match `update.current`. Throws when the kernel refused the update, in which
    /// case the previous state is still in force and the caller retries with a full sync.
    func apply(_ update: TableUpdate) async throws
    /// Removes everything this mode wrote, and nothing else.
    func cleanup() async throws
}
