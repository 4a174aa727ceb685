import KubeObjects
import NetworkTypes

/// Small constructors for objects in tests.
enum Make {
    static func service(_ name: String, ns: String = "default", ip: String = "10.96.0.10", ips: [String]? = nil,
                        type: ServiceType? = nil, ports: [ServicePort] = [ServicePort(name: "http", port: 80)],
                        mutate: (inout Service) -> Void = { _ in }) -> Service {
        var s = Service(metadata: ObjectMeta(name: name, namespace: ns),
                        spec: ServiceSpec(type: type, clusterIP: ip, clusterIPs: ips, ports: ports))
        mutate(&s)
        return s
    }

    static func slice(_ name: String, service: String, ns: String = "default", family: AddressType = .ipv4,
                      ports: [EndpointPort] = [EndpointPort(name: "http", protocol: .tcp, port: 8080)],
                      endpoints: [SliceEndpoint]) -> EndpointSlice {
        EndpointSlice(metadata: ObjectMeta(name: name, namespace: ns, labels: [WellKnownLabels.serviceName: service]),
                      addressType: family, endpoints: endpoints, ports: ports)
    }

    static func endpoint(_ ip: String, node: String? = "node-b", ready: Bool? = nil, serving: Bool? = nil,
                         terminating: Bool? = nil, zone: String? = nil, hints: [String]? = nil) -> SliceEndpoint {
        SliceEndpoint(addresses: [ip],
                      conditions: EndpointConditions(ready: ready, serving: serving, terminating: terminating),
                      nodeName: node, zone: zone, hints: hints.map { EndpointHints(forZones: $0) })
    }

    static func node(_ name: String, zone: String?) -> Node {
        Node(metadata: ObjectMeta(name: name, labels: zone.map { [WellKnownLabels.zone: $0] }))
    }
}
