import KubeObjects
import NetnsHarness
import NetworkTypes

/// What the sandbox needs from a manifest folder: one pod per endpoint address (on this node or the
/// remote one, by the endpoint's `nodeName`), answering on the ports its EndpointSlices list, and the
/// addresses a client would use for every service port.
struct SandboxPlan: Sendable, Equatable {
    struct PodPlan: Sendable, Hashable {
        /// `<service>@<address>`: tells in every answer which service the pod backs and which it is.
        var name: String
        var placement: Placement
        var address: String
        var tcp: [UInt16]
        var udp: [UInt16]
        var sctp: [UInt16]

        var spec: PodSpec {
            let v6 = address.contains(":")
            return PodSpec(name, on: placement, tcp: tcp, udp: udp, sctp: sctp,
                           ipv4: v6 ? nil : address, ipv6: v6 ? address : nil,
                           families: [v6 ? .ipv6 : .ipv4], start: !(tcp.isEmpty && udp.isEmpty && sctp.isEmpty))
        }
    }

    /// One address a client can send to: a cluster IP, a node port, an external IP, a load-balancer IP.
    struct Target: Sendable, Hashable {
        var service: String
        var kind: String
        var address: String
        var port: Int
        var proto: L4Protocol
    }

    var pods: [PodPlan] = []
    var targets: [Target] = []

    /// `sctp`: whether this kernel can serve SCTP (without it, SCTP ports are left out of the pods).
    init(objects: [KubeObject], nodeName: String, sctp: Bool) {
        var byAddress: [String: PodPlan] = [:]
        let slices = objects.compactMap { o -> EndpointSlice? in
            if case .endpointSlice(let s) = o { return s }
            return nil
        }.sorted { ($0.id.namespace, $0.id.name) < ($1.id.namespace, $1.id.name) }
        for slice in slices where slice.addressType != .fqdn {
            let service = slice.serviceID?.name ?? slice.metadata.name
            let ports = (slice.ports ?? []).compactMap { p -> (UInt16, L4Protocol)? in
                guard let n = p.port, let port = UInt16(exactly: n) else { return nil }
                return (port, p.protocol ?? .tcp)
            }
            for endpoint in slice.endpoints ?? [] {
                for raw in endpoint.addresses {
                    guard let ip = IPAddress(raw) else { continue }
                    let address = ip.description
                    var pod = byAddress[address] ?? PodPlan(
                        name: "\(service)@\(address)",
                        placement: endpoint.effectiveNodeName == nodeName ? .local : .remote,
                        address: address, tcp: [], udp: [], sctp: [])
                    for (port, proto) in ports {
                        switch proto {
                        case .tcp: pod.tcp.append(port)
                        case .udp: pod.udp.append(port)
                        case .sctp: if sctp { pod.sctp.append(port) }
                        }
                    }
                    pod.tcp = Array(Set(pod.tcp)).sorted()
                    pod.udp = Array(Set(pod.udp)).sorted()
                    pod.sctp = Array(Set(pod.sctp)).sorted()
                    byAddress[address] = pod
                }
            }
        }
        pods = byAddress.values.sorted { $0.name < $1.name }

        let services = objects.compactMap { o -> Service? in
            if case .service(let s) = o { return s }
            return nil
        }.sorted { ($0.id.namespace, $0.id.name) < ($1.id.namespace, $1.id.name) }
        for svc in services {
            let type = svc.spec.type ?? .clusterIP
            if type == .externalName { continue }
            let clusterIPs = (svc.spec.clusterIPs ?? [svc.spec.clusterIP].compactMap { $0 })
                .compactMap { IPAddress($0)?.description }
            if clusterIPs.isEmpty { continue }  // headless
            for port in svc.spec.ports ?? [] {
                let proto = port.protocol ?? .tcp
                let name = "\(svc.id.namespace)/\(svc.id.name)" + (port.name.map { ":\($0)" } ?? "")
                func add(_ kind: String, _ address: String, _ p: Int) {
                    targets.append(Target(service: name, kind: kind, address: address, port: p, proto: proto))
                }
                for ip in clusterIPs { add("ClusterIP", ip, port.port) }
                if let nodePort = port.nodePort, type == .nodePort || type == .loadBalancer {
                    for ip in clusterIPs {
                        add("NodePort", ip.contains(":") ? AddressPlan.nodeIPv6 : AddressPlan.nodeIPv4, nodePort)
                    }
                }
                for ip in svc.spec.externalIPs ?? [] { add("ExternalIP", ip, port.port) }
                if type == .loadBalancer {
                    for ingress in svc.status?.loadBalancer?.ingress ?? [] where ingress.ipMode != "Proxy" {
                        if let ip = ingress.ip { add("LoadBalancer", ip, port.port) }
                    }
                }
            }
        }
    }
}
