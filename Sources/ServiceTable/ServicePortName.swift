import NetworkTypes

/// Identifies one service port: `namespace/name:portName` plus its protocol (kube-proxy's ServicePortName).
public struct ServicePortName: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var namespace: String
    public var name: String
    /// The port's name in the Service; empty for a single unnamed port.
    public var port: String
    public var `protocol`: L4Protocol

    public init(namespace: String, name: String, port: String, protocol: L4Protocol) {
        self.namespace = namespace
        self.name = name
        self.port = port
        self.protocol = `protocol`
    }

    /// `namespace/name:port` (`namespace/name` for an unnamed port), as kube-proxy prints it.
    public var description: String {
        port.isEmpty ? "\(namespace)/\(name)" : "\(namespace)/\(name):\(port)"
    }

    /// `namespace/name`, the service this port belongs to.
    public var serviceName: String { "\(namespace)/\(name)" }

    public static func < (a: ServicePortName, b: ServicePortName) -> Bool {
        (a.namespace, a.name, a.port, a.protocol) < (b.namespace, b.name, b.port, b.protocol)
    }
}
