import Controller
import Foundation
import KubeObjects
import NetworkTypes
import ServiceTable
import Testing

/// The manifests in `deploy/examples` are what every demo, benchmark and later test starts from:
/// they must decode cleanly, follow the address plan in their README, and produce the table
/// their comments promise.
@Suite("Example manifests")
struct ExampleManifestsTests {
    /// `deploy/examples`, found from this file: Tests/ControllerTests/<this file> → package root.
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("deploy/examples")

    static let files: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }.sorted()
    }()

    static func decode(_ name: String) throws -> ManifestContents {
        let url = directory.appendingPathComponent(name)
        let text = try String(contentsOf: url, encoding: .utf8)
        return ManifestDecoder.decode(text, file: "deploy/examples/\(name)")
    }

    /// Every object of every example file, decoded once for the whole suite.
    static let objects: [KubeObject] = files.flatMap { (try? decode($0).objects.map(\.object)) ?? [] }

    @Test func theFolderHoldsTheExamples() {
        #expect(Self.files.count >= 12, "found \(Self.files) in \(Self.directory.path)")
        #expect(Self.files.contains { $0.hasSuffix(".json") }, "one example is kubectl's JSON output")
    }

    @Test("decodes with no problems", arguments: files)
    func decodesCleanly(_ name: String) throws {
        let contents = try Self.decode(name)
        #expect(contents.syntaxError == nil, "\(contents.syntaxError.map(String.init(describing:)) ?? "")")
        #expect(contents.rejected.isEmpty, "\(contents.rejected.map(\.problem.description))")
        #expect(contents.ignoredKinds.isEmpty)
        #expect(!contents.objects.isEmpty)
    }

    @Test func noObjectIsDefinedTwice() throws {
        var seen: [ObjectID: String] = [:]
        for name in Self.files {
            for decoded in try Self.decode(name).objects {
                let id = decoded.object.id
                #expect(seen[id] == nil, "\(id) is in both \(seen[id] ?? "") and \(name)")
                seen[id] = name
            }
        }
    }

    // MARK: - The address plan (README.md)

    static let serviceCIDRs = [CIDR("10.96.0.0/16")!, CIDR("fd00:10:96::/112")!]
    static let publicCIDR = CIDR("203.0.113.0/24")!
    static let podCIDRs: [String: [CIDR]] = [
        "node-a": [CIDR("10.244.1.0/24")!, CIDR("fd00:10:244:1::/64")!],
        "node-b": [CIDR("10.244.2.0/24")!, CIDR("fd00:10:244:2::/64")!],
        "node-c": [CIDR("10.244.3.0/24")!, CIDR("fd00:10:244:3::/64")!],
    ]
    static let zones = ["node-a": "zone-a", "node-b": "zone-b", "node-c": "zone-c"]

    @Test func servicesFollowTheAddressPlan() throws {
        for case .service(let svc) in Self.objects {
            let spec = svc.spec
            for ip in spec.allClusterIPs {
                let addr = try #require(IPAddress(ip), "\(svc.id): \(ip)")
                #expect(Self.serviceCIDRs.contains { $0.contains(addr) }, "\(svc.id): cluster IP \(ip)")
            }
            for ip in (spec.externalIPs ?? []) + (svc.status?.loadBalancer?.ingress ?? []).compactMap(\.ip) {
                #expect(IPAddress(ip).map(Self.publicCIDR.contains) == true, "\(svc.id): \(ip)")
            }
            for port in spec.ports ?? [] {
                if let np = port.nodePort { #expect((30000...32767).contains(np), "\(svc.id): nodePort \(np)") }
            }
            if let hc = spec.healthCheckNodePort { #expect((30000...32767).contains(hc)) }
        }
    }

    @Test func endpointsFollowTheAddressPlan() throws {
        for case .endpointSlice(let slice) in Self.objects {
            for ep in slice.endpoints ?? [] {
                let node = try #require(ep.nodeName, "\(slice.id): every example endpoint names its node")
                let cidrs = try #require(Self.podCIDRs[node], "\(slice.id): unknown node \(node)")
                for a in ep.addresses {
                    let ip = try #require(IPAddress(a))
                    #expect(cidrs.contains { $0.contains(ip) }, "\(slice.id): \(a) is not in \(node)'s pod CIDR")
                }
                #expect(ep.zone == Self.zones[node], "\(slice.id): \(node) is in \(Self.zones[node]!)")
            }
        }
    }

    /// An endpoint port the service does not have (by name and protocol) would silently carry no traffic.
    @Test func slicePortsMatchTheirServicesPorts() throws {
        let objects = Self.objects
        var services: [NamespacedName: Service] = [:]
        for case .service(let s) in objects { services[s.id] = s }
        for case .endpointSlice(let slice) in objects {
            let owner = try #require(slice.serviceID)
            let svc = try #require(services[owner], "\(slice.id) belongs to no example service")
            let servicePorts = Set((svc.spec.ports ?? []).map { "\($0.name ?? "")/\($0.effectiveProtocol)" })
            for p in slice.ports ?? [] {
                #expect(servicePorts.contains("\(p.name ?? "")/\(p.protocol ?? .tcp)"),
                        "\(slice.id): port \(p.name ?? "") is not a port of \(owner)")
            }
        }
    }

    /// The demo starts one network namespace per pod of a programmed service: keep them few.
    @Test func podCountStaysModest() throws {
        let objects = Self.objects
        var skipped = Set<NamespacedName>()
        for case .service(let s) in objects where s.spec.isHeadless || s.spec.effectiveType == .externalName {
            skipped.insert(s.id)
        }
        var addresses: [NamespacedName: [AddressType: Set<String>]] = [:]
        for case .endpointSlice(let slice) in objects {
            guard let owner = slice.serviceID, !skipped.contains(owner) else { continue }
            for ep in slice.endpoints ?? [] { addresses[owner, default: [:]][slice.addressType, default: []].formUnion(ep.addresses) }
        }
        // A dual-stack pod has an address in each family's slice: count one family per service.
        let pods = addresses.values.map { ($0[.ipv4] ?? $0[.ipv6] ?? []).count }.reduce(0, +)
        #expect(pods == 25, "\(pods) pods: keep at most ~25, and update the README's pod table")
    }

    // MARK: - The table node-a builds from them

    /// The table node-a builds from every example object, built once for the whole suite.
    static let table: ServiceTable = {
        var builder = TableBuilder(nodeName: "node-a")
        for object in objects { builder.apply(.upsert(object)) }
        return builder.build().table
    }()

    @Test func theTableBuilderAcceptsEveryObject() {
        var builder = TableBuilder(nodeName: "node-a")
        for object in Self.objects {
            let problems = builder.apply(.upsert(object))
            #expect(problems.isEmpty, "\(object.id): \(problems)")
        }
        #expect(Self.objects.count == 38, "2 nodes, 17 services, 19 slices")
    }

    static func port(_ ns: String, _ name: String, _ port: String = "", _ proto: L4Protocol = .tcp) -> ServicePortName {
        ServicePortName(namespace: ns, name: name, port: port, protocol: proto)
    }

    @Test func tableHoldsEveryProgrammableServicePort() throws {
        let table = Self.table
        let services = Set(table.entries.keys.map(\.serviceName))
        #expect(services == [
            "kube-system/kube-dns", "default/web", "shop/frontend", "shop/storefront", "shop/checkout",
            "default/legacy-api", "monitoring/otel-agent", "telecom/diameter", "default/echo-dual",
            "default/echo-v6", "default/maintenance", "shop/catalog", "shop/orders", "shop/promotions",
            "shop/reviews",
        ])
        #expect(table.count == 18)
        #expect(table.node.zone == "zone-a")
        #expect(table.node.addresses.contains(IPAddress("192.168.50.10")!))
    }

    @Test func headlessAndExternalNameServicesAreSkipped() throws {
        let table = Self.table
        #expect(table.entries.keys.allSatisfy { $0.name != "postgres" && $0.name != "external-db" })
    }

    @Test func multiPortServiceHasOneEntryPerPortAndProtocol() throws {
        let table = Self.table
        let dns = try #require(table[Self.port("kube-system", "kube-dns", "dns", .udp)])
        let dnsTCP = try #require(table[Self.port("kube-system", "kube-dns", "dns-tcp", .tcp)])
        let metrics = try #require(table[Self.port("kube-system", "kube-dns", "metrics", .tcp)])
        #expect(dns.port == 53 && dnsTCP.port == 53 && metrics.port == 9153)
        #expect(dns.clusterEndpoints.map(\.description) == ["10.244.1.2:53", "10.244.2.2:53"])
        #expect(metrics.clusterEndpoints.map(\.description) == ["10.244.1.2:9153", "10.244.2.2:9153"])
    }

    @Test func unnamedSinglePortFromJSON() throws {
        let web = try #require(Self.table[Self.port("default", "web")])
        #expect(web.clusterIPs == [IPAddress("10.96.100.10")!])
        #expect(web.port == 80)
        #expect(web.clusterEndpoints.map(\.description) == ["10.244.1.10:8080", "10.244.2.10:8080"])
    }

    @Test func dualStackServiceHasTwoClusterIPsAndEndpointsOfBothFamilies() throws {
        let table = Self.table
        let echo = try #require(table[Self.port("default", "echo-dual", "http")])
        #expect(echo.clusterIPs == [IPAddress("10.96.100.17")!, IPAddress("fd00:10:96::17")!])
        #expect(echo.clusterEndpoints.map(\.description) == [
            "10.244.1.17:8080", "10.244.2.17:8080", "[fd00:10:244:1::17]:8080", "[fd00:10:244:2::17]:8080",
        ])
        let v6 = try #require(table[Self.port("default", "echo-v6", "http")])
        #expect(v6.clusterIPs == [IPAddress("fd00:10:96::18")!])
        #expect(v6.clusterEndpoints.map(\.description) == ["[fd00:10:244:1::18]:8080"])
    }

    @Test func endpointInTwoSlicesIsListedOnce() throws {
        let catalog = try #require(Self.table[Self.port("shop", "catalog", "http")])
        #expect(catalog.endpoints.map(\.description) == ["10.244.1.20:8080", "10.244.2.20:8080", "10.244.3.20:8080"])
        #expect(catalog.clusterEndpoints.count == 3)
    }

    @Test func terminatingEndpointIsNotUsedWhileAnotherIsReady() throws {
        let orders = try #require(Self.table[Self.port("shop", "orders", "http")])
        #expect(orders.endpoints.count == 2)
        #expect(orders.clusterEndpoints.map(\.description) == ["10.244.2.21:8080"])
    }

    @Test func allTerminatingFallsBackToServingTerminatingEndpoints() throws {
        let promotions = try #require(Self.table[Self.port("shop", "promotions", "http")])
        #expect(promotions.clusterEndpoints.map(\.description) == ["10.244.1.22:8080", "10.244.3.22:8080"])
        #expect(promotions.clusterEndpoints.allSatisfy { !$0.ready && $0.serving && $0.terminating })
        #expect(promotions.hasEndpoints)
    }

    @Test func serviceWithoutEndpointsIsProgrammedEmpty() throws {
        let maintenance = try #require(Self.table[Self.port("default", "maintenance", "http")])
        #expect(maintenance.clusterIPs == [IPAddress("10.96.100.19")!])
        #expect(maintenance.endpoints.isEmpty)
        #expect(!maintenance.hasEndpoints)
    }

    @Test func externalTrafficPolicyLocalUsesNodeAEndpoints() throws {
        let checkout = try #require(Self.table[Self.port("shop", "checkout", "https")])
        #expect(checkout.type == .loadBalancer)
        #expect(checkout.externalPolicyIsLocal)
        #expect(checkout.nodePort == 32443)
        #expect(checkout.healthCheckNodePort == 32100)
        #expect(checkout.loadBalancerIPs == [IPAddress("203.0.113.11")!])
        #expect(checkout.localEndpoints.map(\.description) == ["10.244.1.13:8443"])
        #expect(checkout.externalEndpoints.map(\.description) == ["10.244.1.13:8443"])
        // The cluster IP still reaches every pod.
        #expect(checkout.internalEndpoints.map(\.description) == ["10.244.1.13:8443", "10.244.3.13:8443"])
    }

    @Test func internalTrafficPolicyLocalUsesNodeAEndpoints() throws {
        let agent = try #require(Self.table[Self.port("monitoring", "otel-agent", "otlp-grpc")])
        #expect(agent.internalPolicyIsLocal)
        #expect(agent.internalEndpoints.map(\.description) == ["10.244.1.15:4317"])
    }

    @Test func loadBalancerWithSourceRanges() throws {
        let table = Self.table
        let http = try #require(table[Self.port("shop", "storefront", "http")])
        let https = try #require(table[Self.port("shop", "storefront", "https")])
        #expect(http.loadBalancerIPs == [IPAddress("203.0.113.10")!])
        #expect(http.loadBalancerSourceRanges.map(\.description) == ["192.0.2.64/26", "198.51.100.0/24"])
        #expect(http.nodePort == 31080 && https.nodePort == 31443)
        #expect(https.clusterEndpoints.map(\.description) == ["10.244.3.12:8443"])
        #expect(!http.externalPolicyIsLocal && http.healthCheckNodePort == nil)
    }

    @Test func nodePortExternalIPsAffinityAndSCTP() throws {
        let table = Self.table
        let frontend = try #require(table[Self.port("shop", "frontend", "http")])
        #expect(frontend.type == .nodePort && frontend.nodePort == 30080)
        #expect(frontend.clusterEndpoints.map(\.description) == ["10.244.2.11:8080"])

        let legacy = try #require(table[Self.port("default", "legacy-api", "http")])
        #expect(legacy.externalIPs == [IPAddress("203.0.113.20")!])
        #expect(legacy.sessionAffinityTimeout == 600)
        #expect(legacy.nodePort == nil)

        let diameter = try #require(table[Self.port("telecom", "diameter", "diameter", .sctp)])
        #expect(diameter.clusterEndpoints.map(\.description) == ["10.244.1.16:3868"])
    }

    @Test func topologyHintsKeepNodeAInItsZone() throws {
        let reviews = try #require(Self.table[Self.port("shop", "reviews", "http")])
        #expect(reviews.trafficDistribution == "PreferClose")
        #expect(reviews.endpoints.count == 3)
        #expect(reviews.clusterEndpoints.map(\.description) == ["10.244.1.23:9080"])
    }
}
