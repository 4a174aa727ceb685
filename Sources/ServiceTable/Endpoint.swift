import NetworkTypes

/// One backend of a service port, as this node sees it.
public struct Endpoint: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var ip: IPAddress
    public var port: UInt16
    public var ready: Bool
    public var serving: Bool
    public var terminating: Bool
    public var nodeName: String?
    public var zone: String?
    /// Zones this endpoint is hinted for (`hints.forZones`), sorted; empty when it has no hints.
    public var zoneHints: [String]
    /// The endpoint runs on this node.
    public var isLocal: Bool

    public init(ip: IPAddress, port: UInt16, ready: Bool = true, serving: Bool? = nil, terminating: Bool = false,
                nodeName: String? = nil, zone: String? = nil, zoneHints: [String] = [], isLocal: Bool = false) {
        self.ip = ip
        self.port = port
        self.ready = ready
        self.serving = serving ?? ready
        self.terminating = terminating
        self.nodeName = nodeName
        self.zone = zone
        self.zoneHints = zoneHints
        self.isLocal = isLocal
    }

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
}
