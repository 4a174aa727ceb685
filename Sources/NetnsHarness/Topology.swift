import Foundation
import NetworkTypes

/// A network namespace of the test cluster (`ip netns` name).
public struct Namespace: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public init(_ name: String) { self.name = name }
    public var description: String { name }
    /// The bind mount `ip netns` keeps for it: open it and `setns(2)` to program the namespace from
    /// inside the test process (as an in-process data plane does).
    public var path: String { "/run/netns/\(name)" }
}

/// Which node a pod runs on: the node under test (where kproxy runs) or the remote node.
public enum Placement: String, Sendable, Hashable, Codable {
    case local
    case remote
}

/// A pod to create: its name (what it answers with), its node, its ports and, optionally, its addresses.
public struct PodSpec: Sendable, Hashable {
    public var name: String
    public var placement: Placement
    public var tcp: [UInt16]
    public var udp: [UInt16]
    public var sctp: [UInt16]
    /// Explicit addresses; `nil` picks the next free one in the node's pod CIDR. Any address works
    /// (routes are per pod), so the sandbox can use the addresses from EndpointSlices.
    public var ipv4: String?
    public var ipv6: String?
    public var families: [IPFamily]
    /// Start `testpod serve` right away (otherwise call `startPod`).
    public var start: Bool

    public init(_ name: String, on placement: Placement = .local, tcp: [UInt16] = [8080], udp: [UInt16] = [],
                sctp: [UInt16] = [], ipv4: String? = nil, ipv6: String? = nil,
                families: [IPFamily] = [.ipv4, .ipv6], start: Bool = true) {
        self.name = name
        self.placement = placement
        self.tcp = tcp
        self.udp = udp
        self.sctp = sctp
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.families = families
        self.start = start
    }
}

/// A pod of the running cluster.
public struct Pod: Sendable, Hashable {
    public let name: String
    public let namespace: Namespace
    public let placement: Placement
    public let ipv4: String?
    public let ipv6: String?
    public let tcp: [UInt16]
    public let udp: [UInt16]
    public let sctp: [UInt16]
    /// The node-side end of the pod's veth (in the node or remote node namespace).
    public let hostInterface: String

    /// The pod's addresses, IPv4 first.
    public var ips: [String] { [ipv4, ipv6].compactMap { $0 } }

    public func ip(_ family: IPFamily) -> String? { family == .ipv4 ? ipv4 : ipv6 }
}

/// A client to create outside the cluster. A string literal names a client with automatic
/// addresses (`100.64.K.2`, `fd00:64:K::2`); give addresses to play a particular source (e.g. one
/// inside a load balancer's `loadBalancerSourceRanges` and one outside).
public struct ClientSpec: Sendable, Hashable, ExpressibleByStringLiteral {
    public var name: String
    public var ipv4: String?
    public var ipv6: String?

    public init(_ name: String, ipv4: String? = nil, ipv6: String? = nil) {
        self.name = name
        self.ipv4 = ipv4
        self.ipv6 = ipv6
    }

    public init(stringLiteral name: String) { self.init(name) }
}

/// A client outside the cluster, on its own point-to-point link to the node (for NodePort,
/// externalIP and load-balancer traffic). Its default routes point at the node.
public struct Client: Sendable, Hashable {
    public let name: String
    public let namespace: Namespace
    public let ipv4: String
    public let ipv6: String
    /// The node's addresses on this client's link (the client's gateway).
    public let nodeSideIPv4: String
    public let nodeSideIPv6: String
    /// The node-side interface of the link.
    public let hostInterface: String

    public func ip(_ family: IPFamily) -> String { family == .ipv4 ? ipv4 : ipv6 }
}

/// How the cluster is built.
public struct ClusterOptions: Sendable {
    /// The node kproxy runs on (pass it as `--hostname-override`); the examples' node-a.
    public var nodeName = "node-a"
    /// The other node, where `.remote` pods run (the examples' node-b; node-c's pods can live there too).
    public var remoteNodeName = "node-b"
    /// Namespace name prefix; `nil` makes a unique one (`kp<pid><random>-`).
    public var prefix: String?
    /// Routed into the node from pods and clients, and via `lo` inside the node so that locally
    /// originated traffic to a service IP has a route for DNAT in the output hook to act on.
    public var serviceCIDRs = ["10.96.0.0/12", "fd00:10:96::/112"]
    /// Extra routes in the node namespace, as `ip route add` arguments (e.g. `203.0.113.0/24 dev lo`).
    public var nodeRoutes: [String] = []
    /// Give the node a default route (both families) towards the first client, as a real node has
    /// towards its gateway: traffic the node does not DNAT is forwarded and meets the filter hooks,
    /// and the node can send to external and load-balancer IPs.
    public var defaultRouteViaFirstClient = true
    /// Extra sysctls in the node namespace (e.g. `net.ipv4.conf.all.route_localnet: "1"`).
    public var nodeSysctls: [String: String] = [:]
    /// Keep the namespaces when the `Cluster` object goes away without `destroy()` (the sandbox).
    public var keepOnDeinit = false

    public init(nodeName: String = "node-a", remoteNodeName: String = "node-b", prefix: String? = nil,
                serviceCIDRs: [String] = ["10.96.0.0/12", "fd00:10:96::/112"], nodeRoutes: [String] = [],
                defaultRouteViaFirstClient: Bool = true, nodeSysctls: [String: String] = [:],
                keepOnDeinit: Bool = false) {
        self.nodeName = nodeName
        self.remoteNodeName = remoteNodeName
        self.prefix = prefix
        self.serviceCIDRs = serviceCIDRs
        self.nodeRoutes = nodeRoutes
        self.defaultRouteViaFirstClient = defaultRouteViaFirstClient
        self.nodeSysctls = nodeSysctls
        self.keepOnDeinit = keepOnDeinit
    }
}

/// The fixed address plan, the one `deploy/examples/README.md` uses (node-a 192.168.50.10, node-a's
/// pods in 10.244.1.0/24, node-b's in 10.244.2.0/24). Pods and clients sit on point-to-point veths
/// with /32 and /128 addresses (as Calico does), so every packet between them crosses the node's IP
/// layer — where kproxy's rules are — and any address can be given to a pod.
///
///     client (100.64.K.2) ──ecK── node-a (192.168.50.10) ──eth0── node-b (192.168.50.11)
///                                   │ vpN (gateway 10.244.1.1)      │ vpN (gateway 10.244.2.1)
///                                 local pods 10.244.1.100…        remote pods 10.244.2.100…
public enum AddressPlan {
    public static let nodeIPv4 = "192.168.50.10"
    public static let nodeIPv6 = "fd00:192:168:50::10"
    public static let remoteNodeIPv4 = "192.168.50.11"
    public static let remoteNodeIPv6 = "fd00:192:168:50::11"
    public static let nodeNetworkV4Prefix = 24
    public static let nodeNetworkV6Prefix = 64
    /// Automatic pod addresses start at this host number (the examples use low numbers).
    public static let firstAutomaticPodHost = 100

    /// The node-side address of every pod veth, the pods' default gateway.
    public static func podGateway(_ placement: Placement, _ family: IPFamily) -> String {
        switch (placement, family) {
        case (.local, .ipv4): return "10.244.1.1"
        case (.local, .ipv6): return "fd00:10:244:1::1"
        case (.remote, .ipv4): return "10.244.2.1"
        case (.remote, .ipv6): return "fd00:10:244:2::1"
        }
    }

    /// The pod address with host number `n` on a node.
    public static func podAddress(_ placement: Placement, _ family: IPFamily, _ n: Int) -> String {
        let subnet = placement == .local ? 1 : 2
        return family == .ipv4 ? "10.244.\(subnet).\(n)" : canonical("fd00:10:244:\(subnet)::\(String(n, radix: 16))")
    }

    public static func clientIPv4(_ k: Int) -> String { "100.64.\(k).2" }
    public static func clientIPv6(_ k: Int) -> String { canonical("fd00:64:\(String(k, radix: 16))::2") }
    public static func nodeSideIPv4(_ k: Int) -> String { "100.64.\(k).1" }
    public static func nodeSideIPv6(_ k: Int) -> String { canonical("fd00:64:\(String(k, radix: 16))::1") }

    /// The MAC address of one end of a veth: fixed, so that neighbour entries can be pinned.
    static func mac(link: Int, side: Int) -> String {
        "02:6b:70:" + [(link >> 8) & 0xff, link & 0xff, side].map { String(format: "%02x", $0) }.joined(separator: ":")
    }

    /// RFC 5952 form, as the kernel and testpod print addresses (`fd00:64::2`, not `fd00:64:0::2`).
    static func canonical(_ ip: String) -> String { IPAddress(ip)?.description ?? ip }
}
