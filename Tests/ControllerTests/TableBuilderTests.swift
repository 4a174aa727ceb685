import Testing
import KubeObjects
import NetworkTypes
import ServiceTable
@testable import Controller

struct TableBuilderTests {
    let http = ServicePortName(namespace: "default", name: "web", port: "http", protocol: .tcp)

    func build(_ objects: [KubeObject], node: String = "node-a") -> ServiceTable {
        var b = TableBuilder(nodeName: node)
        for o in objects { #expect(b.apply(.upsert(o)).isEmpty) }
        return b.build().table
    }

    @Test func oneEntryPerServicePortWithEndpointsMatchedByPortName() throws {
        let svc = Make.service("web", ports: [ServicePort(name: "http", port: 80),
                                              ServicePort(name: "dns", protocol: .udp, port: 53)])
        let slice = Make.slice("web-1", service: "web",
                               ports: [EndpointPort(name: "http", protocol: .tcp, port: 8080),
                                       EndpointPort(name: "dns", protocol: .udp, port: 5353)],
                               endpoints: [Make.endpoint("10.244.1.2"), Make.endpoint("10.244.2.2")])
        let table = build([.service(svc), .endpointSlice(slice)])
        #expect(table.count == 2)
        let entry = try #require(table[http])
        #expect(entry.port == 80)
        #expect(entry.endpoints.map(\.description) == ["10.244.1.2:8080", "10.244.2.2:8080"])
        let dns = try #require(table[ServicePortName(namespace: "default", name: "web", port: "dns", protocol: .udp)])
        #expect(dns.endpoints.map(\.port) == [5353, 5353])
    }

    @Test func protocolMustMatchToo() throws {
        let svc = Make.service("web")
        let slice = Make.slice("web-1", service: "web", ports: [EndpointPort(name: "http", protocol: .udp, port: 8080)],
                               endpoints: [Make.endpoint("10.244.1.2")])
        let entry = try #require(build([.service(svc), .endpointSlice(slice)])[http])
        #expect(entry.endpoints.isEmpty)
        #expect(!entry.hasEndpoints)
    }

    @Test func endpointsAreMergedAndDeduplicatedAcrossSlicesLocalCopyWins() throws {
        let svc = Make.service("web")
        let a = Make.slice("web-a", service: "web", endpoints: [Make.endpoint("10.244.1.2"), Make.endpoint("10.244.1.3")])
        let b = Make.slice("web-b", service: "web", endpoints: [Make.endpoint("10.244.1.3", node: "node-a"),
                                                                Make.endpoint("10.244.1.4")])
        let entry = try #require(build([.service(svc), .endpointSlice(a), .endpointSlice(b)])[http])
        #expect(entry.endpoints.map(\.ip.description) == ["10.244.1.2", "10.244.1.3", "10.244.1.4"])
        #expect(entry.endpoints[1].isLocal)
    }

    @Test func headlessExternalNameAndOtherProxiesServicesAreSkipped() {
        let headless = Make.service("headless", ip: "None")
        let external = Make.service("ext", ip: "") { $0.spec.type = .externalName; $0.spec.externalName = "example.com" }
        let other = Make.service("other", ip: "10.96.0.12") {
            $0.metadata.labels = [WellKnownLabels.serviceProxyName: "someone-else"]
        }
        let kept = Make.service("kept", ip: "10.96.0.13")
        let table = build([.service(headless), .service(external), .service(other), .service(kept)])
        #expect(table.sortedEntries.map(\.name.name) == ["kept"])
    }

    @Test func typesPortsAndAddressesAreCarried() throws {
        let svc = Make.service("lb", type: .loadBalancer, ports: [ServicePort(name: "http", port: 80, nodePort: 30080)]) {
            $0.spec.externalIPs = ["203.0.113.7", "2001:db8::7"]
            $0.spec.loadBalancerSourceRanges = ["198.51.100.0/24 "]
            $0.spec.sessionAffinity = .clientIP
            $0.spec.externalTrafficPolicy = .local
            $0.spec.healthCheckNodePort = 32000
            $0.status = ServiceStatus(loadBalancer: LoadBalancerStatus(ingress: [
                LoadBalancerIngress(ip: "203.0.113.10"), LoadBalancerIngress(ip: "203.0.113.11", ipMode: "Proxy"),
                LoadBalancerIngress(ip: nil, hostname: "lb.example.com"),
            ]))
        }
        let entry = try #require(build([.service(svc)])[ServicePortName(namespace: "default", name: "lb", port: "http", protocol: .tcp)])
        #expect(entry.type == .loadBalancer)
        #expect(entry.nodePort == 30080)
        // The IPv6 external IP is dropped: the service has no IPv6 cluster IP (kube-proxy's per-family view).
        #expect(entry.externalIPs.map(\.description) == ["203.0.113.7"])
        // ipMode Proxy: the load balancer proxies, the node must not capture the IP.
        #expect(entry.loadBalancerIPs.map(\.description) == ["203.0.113.10"])
        #expect(entry.loadBalancerSourceRanges.map(\.description) == ["198.51.100.0/24"])
        #expect(entry.sessionAffinityTimeout == 10800)
        #expect(entry.externalPolicyIsLocal)
        #expect(entry.healthCheckNodePort == 32000)
    }

    @Test func nodePortIsIgnoredOnClusterIPServices() throws {
        let svc = Make.service("web", ports: [ServicePort(name: "http", port: 80, nodePort: 30080)])
        #expect(try #require(build([.service(svc)])[http]).nodePort == nil)
    }

    @Test func dualStackSelectsPerFamily() throws {
        let svc = Make.service("web", ip: "10.96.0.10", ips: ["10.96.0.10", "fd00:10:96::10"]) {
            $0.spec.ipFamilies = [.ipv4, .ipv6]
        }
        let v4 = Make.slice("web-v4", service: "web", endpoints: [Make.endpoint("10.244.1.2"),
                                                                  Make.endpoint("10.244.1.3", ready: false, serving: true, terminating: true)])
        let v6 = Make.slice("web-v6", service: "web", family: .ipv6,
                            endpoints: [Make.endpoint("fd00:10:244:1::3", ready: false, serving: true, terminating: true)])
        let entry = try #require(build([.service(svc), .endpointSlice(v4), .endpointSlice(v6)])[http])
        #expect(entry.clusterIPs.map(\.description) == ["10.96.0.10", "fd00:10:96::10"])
        // IPv4 has a ready endpoint; IPv6 only a terminating one, which is its family's fallback.
        #expect(entry.clusterEndpoints.map(\.description) == ["10.244.1.2:8080", "[fd00:10:244:1::3]:8080"])
    }

    @Test func sliceOfAFamilyTheServiceDoesNotHaveIsIgnored() throws {
        let svc = Make.service("web")
        let v6 = Make.slice("web-v6", service: "web", family: .ipv6, endpoints: [Make.endpoint("fd00::3")])
        #expect(try #require(build([.service(svc), .endpointSlice(v6)])[http]).endpoints.isEmpty)
    }

    @Test func nodeZoneChangeRecomputesTopology() throws {
        var b = TableBuilder(nodeName: "node-a")
        b.apply(.upsert(.service(Make.service("web"))))
        b.apply(.upsert(.endpointSlice(Make.slice("web-1", service: "web", endpoints: [
            Make.endpoint("10.244.1.2", hints: ["zone-a"]), Make.endpoint("10.244.2.2", hints: ["zone-b"]),
        ]))))
        b.apply(.upsert(.node(Make.node("node-a", zone: "zone-a"))))
        #expect(b.build().table[http]!.clusterEndpoints.map(\.ip.description) == ["10.244.1.2"])
        b.apply(.upsert(.node(Make.node("node-a", zone: "zone-b"))))
        let (table, diff) = b.build()
        #expect(table[http]!.clusterEndpoints.map(\.ip.description) == ["10.244.2.2"])
        #expect(diff.changed == [http])
        #expect(table.node.zone == "zone-b")
        // Another node's object does not matter to this one.
        b.apply(.upsert(.node(Make.node("node-b", zone: "zone-c"))))
        #expect(!b.hasPendingChanges)
    }

    @Test func invalidObjectIsRefusedAndItsLastValidVersionStays() throws {
        var b = TableBuilder(nodeName: "node-a")
        b.apply(.upsert(.service(Make.service("web"))))
        _ = b.build()
        let broken = Make.service("web", ports: [ServicePort(name: "http", port: 0)])
        let problems = b.apply(.upsert(.service(broken)))
        #expect(problems.map(\.field) == ["spec.ports[0].port"])
        #expect(!b.hasPendingChanges)
        #expect(b.build().table[http]?.port == 80)
    }

    @Test func deletesRemoveEntriesAndEndpoints() throws {
        var b = TableBuilder(nodeName: "node-a")
        b.apply(.upsert(.service(Make.service("web"))))
        b.apply(.upsert(.endpointSlice(Make.slice("web-1", service: "web", endpoints: [Make.endpoint("10.244.1.2")]))))
        #expect(b.build().table[http]!.endpoints.count == 1)
        b.apply(.delete(ObjectID(kind: .endpointSlice, name: NamespacedName(namespace: "default", name: "web-1"))))
        var (table, diff) = b.build()
        #expect(table[http]!.endpoints.isEmpty)
        #expect(diff.changed == [http])
        b.apply(.delete(ObjectID(kind: .service, name: NamespacedName(namespace: "default", name: "web"))))
        (table, diff) = b.build()
        #expect(table.count == 0)
        #expect(diff.removed == [http])
    }

    @Test func sliceMovingToAnotherServiceUpdatesBoth() throws {
        var b = TableBuilder(nodeName: "node-a")
        b.apply(.upsert(.service(Make.service("web"))))
        b.apply(.upsert(.service(Make.service("api", ip: "10.96.0.11"))))
        b.apply(.upsert(.endpointSlice(Make.slice("s", service: "web", endpoints: [Make.endpoint("10.244.1.2")]))))
        _ = b.build()
        b.apply(.upsert(.endpointSlice(Make.slice("s", service: "api", endpoints: [Make.endpoint("10.244.1.2")]))))
        let (table, diff) = b.build()
        let api = ServicePortName(namespace: "default", name: "api", port: "http", protocol: .tcp)
        #expect(table[http]!.endpoints.isEmpty)
        #expect(table[api]!.endpoints.count == 1)
        #expect(diff.changed == [http, api])
    }

    @Test func unchangedInputGivesSameVersionAndEmptyDiff() {
        var b = TableBuilder(nodeName: "node-a")
        b.apply(.upsert(.service(Make.service("web"))))
        let first = b.build()
        b.apply(.upsert(.service(Make.service("web"))))
        let second = b.build()
        #expect(second.diff.isEmpty)
        #expect(second.table.version == first.table.version)
    }

    /// The incremental diff must always equal a full comparison of the two tables, and the table
    /// must equal one built from scratch from the objects in force (the builder keeps digests and
    /// reuses entries as templates, not the objects), whatever the sequence of changes: a seeded
    /// random walk over services, slices and the node.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func incrementalDiffMatchesFullComparison(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        var b = TableBuilder(nodeName: "node-a")
        var previous = b.table
        var live: [ObjectID: KubeObject] = [:]
        for _ in 0..<300 {
            var event: ObjectEvent?
            let svc = "svc\(rng.next() % 12)"
            switch rng.next() % 7 {
            case 0, 1:
                let ip = "10.96.0.\(rng.next() % 200 + 1)"
                let ports = rng.next() % 3 == 0
                    ? [ServicePort(name: "http", port: 80), ServicePort(name: "dns", protocol: .udp, port: 53)]
                    : [ServicePort(name: "http", port: Int(rng.next() % 3) + 80)]
                event = .upsert(.service(Make.service(svc, ip: ip, ports: ports) {
                    if rng.next() % 4 == 0 { $0.spec.internalTrafficPolicy = .local }
                }))
            case 2, 3:
                let n = Int(rng.next() % 4)
                let eps = (0..<n).map { i in
                    Make.endpoint("10.244.\(rng.next() % 3).\(i + 1)", node: rng.next() % 2 == 0 ? "node-a" : "node-b",
                                  ready: rng.next() % 4 != 0, serving: true, terminating: rng.next() % 3 == 0,
                                  hints: rng.next() % 2 == 0 ? ["zone-a"] : nil)
                }
                event = .upsert(.endpointSlice(Make.slice("\(svc)-\(rng.next() % 2)", service: svc,
                    ports: [EndpointPort(name: "http", protocol: .tcp, port: 8080),
                            EndpointPort(name: "dns", protocol: .udp, port: 5353)], endpoints: eps)))
            case 4:
                event = .delete(ObjectID(kind: .service, name: NamespacedName(namespace: "default", name: svc)))
            case 5:
                event = .delete(ObjectID(kind: .endpointSlice,
                                         name: NamespacedName(namespace: "default", name: "\(svc)-\(rng.next() % 2)")))
            default:
                event = .upsert(.node(Make.node("node-a", zone: rng.next() % 2 == 0 ? "zone-a" : "zone-b")))
            }
            switch event! {
            case .upsert(let object): live[object.id] = object
            case .delete(let id): live[id] = nil
            }
            b.apply(event!)
            if rng.next() % 3 == 0 {
                let (table, diff) = b.build()
                #expect(diff == TableDiff.between(previous, table))
                previous = table
                var scratch = TableBuilder(nodeName: "node-a")
                for id in live.keys.sorted() { scratch.apply(.upsert(live[id]!)) }
                let fresh = scratch.build().table
                #expect(fresh.sortedEntries == table.sortedEntries)
                #expect(fresh.node == table.node)
            }
        }
    }
}

/// A tiny deterministic random number generator for reproducible random walks.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
