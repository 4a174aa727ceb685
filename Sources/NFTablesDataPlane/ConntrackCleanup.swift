import NetworkTypes
import ServiceTable

/// UDP has no connection to end: a conntrack entry keeps sending a client's datagrams to the
/// endpoint DNAT chose until it times out, even after that endpoint is gone. After a sync,
/// entries that still point at removed endpoints (or that recorded a service port with no
/// endpoint, before it got one) are deleted, as kube-proxy does.
///
/// The filters are applied over netlink by `ConntrackNetlink`, on the data plane's thread (so
/// in its network namespace). `arguments` spells each one as `conntrack -D` would, for logs.
struct ConntrackFilter: Hashable, Sendable, CustomStringConvertible {
    var family: IPFamily
    /// `--orig-dst`: the address the client sent to (cluster, external or LB IP).
    var originalDestination: IPAddress?
    /// `--orig-port-dst`: the node port the client sent to.
    var originalPort: UInt16?
    /// `--dst-nat`: the endpoint DNAT chose; nil deletes every entry of the destination.
    var natDestination: IPAddress?

    var arguments: [String] {
        var a = ["-D", "-f", family == .ipv4 ? "ipv4" : "ipv6", "-p", "udp"]
        if let d = originalDestination { a += ["--orig-dst", d.description] }
        if let p = originalPort { a += ["--orig-port-dst", String(p)] }
        if let n = natDestination { a += ["--dst-nat", n.description] }
        return a
    }

    var description: String { "conntrack " + arguments.joined(separator: " ") }
}

enum ConntrackCleanup {
    /// The entries to delete after moving from `old` to `new` for one service port.
    static func filters(old: ServicePortEntry?, new: ServicePortEntry?) -> [ConntrackFilter] {
        guard (old ?? new)?.protocol == .udp else { return [] }
        var out: [ConntrackFilter] = []
        if let old {
            let kept = Set((new?.usedEndpoints ?? []).map(\.ip))
            let destinations = old.clusterIPs + old.externalIPs + old.loadBalancerIPs
            for ep in Set(old.usedEndpoints.map(\.ip)).subtracting(kept).sorted() {
                for d in destinations where d.family == ep.family {
                    out.append(ConntrackFilter(family: ep.family, originalDestination: d, natDestination: ep))
                }
                if let np = old.nodePort {
                    out.append(ConntrackFilter(family: ep.family, originalPort: np, natDestination: ep))
                }
            }
        }
        // A service port that had no endpoint (or did not exist) and now has one: entries that
        // recorded the rejected or unanswered flow would keep clients from reaching it.
        if let new, !new.usedEndpoints.isEmpty, old?.usedEndpoints.isEmpty ?? true {
            for d in new.clusterIPs + new.externalIPs + new.loadBalancerIPs {
                out.append(ConntrackFilter(family: d.family, originalDestination: d))
            }
            if let np = new.nodePort {
                for f in Set(new.clusterIPs.map(\.family)).sorted() {
                    out.append(ConntrackFilter(family: f, originalPort: np))
                }
            }
        }
        return out
    }

    static func filters(names: Set<ServicePortName>, previous: ServiceTable, current: ServiceTable) -> [ConntrackFilter] {
        names.sorted().flatMap { filters(old: previous[$0], new: current[$0]) }
    }
}

