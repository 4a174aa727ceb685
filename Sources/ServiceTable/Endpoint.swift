import NetworkTypes

/// Where an endpoint runs: its node, zone and topology hints. Immutable and shared: every endpoint
/// on the same node with the same zone and hints can point at one instance (the controller interns
/// them), so an endpoint costs one pointer for its topology instead of three inline values.
public final class EndpointTopology: Sendable, Hashable {
    public let nodeName: String?
    public let zone: String?
    /// Zones this endpoint is hinted for (`hints.forZones`), sorted; empty when it has no hints.
    public let zoneHints: [String]

    public init(nodeName: String?, zone: String?, zoneHints: [String]) {
        self.nodeName = nodeName
        self.zone = zone
        self.zoneHints = zoneHints
    }

    public static func == (a: EndpointTopology, b: EndpointTopology) -> Bool {
        a === b || (a.nodeName == b.nodeName && a.zone == b.zone && a.zoneHints == b.zoneHints)
    }

    public func hash(into h: inout Hasher) {
        h.combine(nodeName)
        h.combine(zone)
        h.combine(zoneHints)
    }
}

/// One backend of a service port, as this node sees it. 32 bytes: the table holds one per
/// endpoint and service port, hundreds of thousands at scale.
public struct Endpoint: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var ip: IPAddress
    public var port: UInt16
    public var ready: Bool
    public var serving: Bool
    public var terminating: Bool
    /// The endpoint runs on this node.
    public var isLocal: Bool
    /// Node, zone and hints; nil when the endpoint names none of them.
    public var topology: EndpointTopology?

    public init(ip: IPAddress, port: UInt16, ready: Bool = true, serving: Bool? = nil, terminating: Bool = false,
                topology: EndpointTopology?, isLocal: Bool = false) {
        self.ip = ip
        self.port = port
        self.ready = ready
        self.serving = serving ?? ready
        self.terminating = terminating
        self.isLocal = isLocal
        self.topology = topology
    }

    public init(ip: IPAddress, port: UInt16, ready: Bool = true, serving: Bool? = nil, terminating: Bool = false,
                nodeName: String? = nil, zone: String? = nil, zoneHints: [String] = [], isLocal: Bool = false) {
        let topology = nodeName == nil && zone == nil && zoneHints.isEmpty
            ? nil : EndpointTopology(nodeName: nodeName, zone: zone, zoneHints: zoneHints)
        self.init(ip: ip, port: port, ready: ready, serving: serving, terminating: terminating,
                  topology: topology, isLocal: isLocal)
    }

    public var nodeName: String? { topology?.nodeName }
    public var zone: String? { topology?.zone }
    /// Zones this endpoint is hinted for (`hints.forZones`), sorted; empty when it has no hints.
    public var zoneHints: [String] { topology?.zoneHints ?? [] }

    public var family: IPFamily { ip.family }

    /// `ip:port` (`[ip]:port` for IPv6).
    public var description: String { "\(ip.bracketed):\(port)" }

    /// `ready`, `serving,terminating`, … as kubectl shows endpoint conditions.
    public var conditionsDescription: String {
        var c: [String] = []
        if ready { c.append("ready") }
        if serving && !ready { c.append("serving") }
        if terminating { c.append("terminating") }
        return c.isEmpty ? "not-ready" : c.joined(separator: ",")
    }

    public static func < (a: Endpoint, b: Endpoint) -> Bool { (a.ip, a.port) < (b.ip, b.port) }

    // The JSON shape (/debug/table) names the topology's fields directly, as before it was shared.
    private enum CodingKeys: String, CodingKey {
        case ip, port, ready, serving, terminating, nodeName, zone, zoneHints, isLocal
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(ip: try c.decode(IPAddress.self, forKey: .ip), port: try c.decode(UInt16.self, forKey: .port),
                  ready: try c.decode(Bool.self, forKey: .ready), serving: try c.decode(Bool.self, forKey: .serving),
                  terminating: try c.decode(Bool.self, forKey: .terminating),
                  nodeName: try c.decodeIfPresent(String.self, forKey: .nodeName),
                  zone: try c.decodeIfPresent(String.self, forKey: .zone),
                  zoneHints: try c.decodeIfPresent([String].self, forKey: .zoneHints) ?? [],
                  isLocal: try c.decode(Bool.self, forKey: .isLocal))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ip, forKey: .ip)
        try c.encode(port, forKey: .port)
        try c.encode(ready, forKey: .ready)
        try c.encode(serving, forKey: .serving)
        try c.encode(terminating, forKey: .terminating)
        try c.encodeIfPresent(nodeName, forKey: .nodeName)
        try c.encodeIfPresent(zone, forKey: .zone)
        try c.encode(zoneHints, forKey: .zoneHints)
        try c.encode(isLocal, forKey: .isLocal)
    }
}
