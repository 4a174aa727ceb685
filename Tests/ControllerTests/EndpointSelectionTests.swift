import Testing
import NetworkTypes
import ServiceTable
@testable import Controller

/// Rows modelled on kube-proxy's TestCategorizeEndpoints: which endpoints each policy uses.
struct EndpointSelectionTests {
    struct Row: CustomTestStringConvertible, Sendable {
        var name: String
        var endpoints: [Endpoint]
        var internalLocal = false
        var externalLocal = false
        var externallyAccessible = false
        var zone: String? = "zone-a"
        var cluster: [String]
        var local: [String]
        var hasAny: Bool
        var testDescription: String { name }
    }

    static func ep(_ ip: String, ready: Bool = true, serving: Bool? = nil, terminating: Bool = false,
                   local: Bool = false, hints: [String] = []) -> Endpoint {
        Endpoint(ip: IPAddress(ip)!, port: 80, ready: ready, serving: serving, terminating: terminating,
                 nodeName: local ? "node-a" : "node-b", zoneHints: hints, isLocal: local)
    }

    static let rows: [Row] = [
        Row(name: "ready endpoints are all used for cluster traffic",
            endpoints: [ep("10.0.0.1"), ep("10.0.0.2"), ep("10.0.0.3", ready: false, serving: false)],
            cluster: ["10.0.0.1", "10.0.0.2"], local: [], hasAny: true),
        Row(name: "no endpoints at all: nothing, and traffic must be rejected",
            endpoints: [], cluster: [], local: [], hasAny: false),
        Row(name: "only not-ready, not-serving endpoints: nothing",
            endpoints: [ep("10.0.0.1", ready: false, serving: false)], cluster: [], local: [], hasAny: false),
        Row(name: "no ready endpoint: serving terminating endpoints are the fallback",
            endpoints: [ep("10.0.0.1", ready: false, serving: true, terminating: true),
                        ep("10.0.0.2", ready: false, serving: false, terminating: true)],
            cluster: ["10.0.0.1"], local: [], hasAny: true),
        Row(name: "a ready endpoint exists: terminating ones are not used",
            endpoints: [ep("10.0.0.1"), ep("10.0.0.2", ready: false, serving: true, terminating: true)],
            cluster: ["10.0.0.1"], local: [], hasAny: true),
        Row(name: "hints for this zone are honoured",
            endpoints: [ep("10.0.0.1", hints: ["zone-a"]), ep("10.0.0.2", hints: ["zone-b"]),
                        ep("10.0.0.3", hints: ["zone-c"]), ep("10.0.0.4", hints: ["zone-a"])],
            cluster: ["10.0.0.1", "10.0.0.4"], local: [], hasAny: true),
        Row(name: "hints ignored when some ready endpoint has none",
            endpoints: [ep("10.0.0.1", hints: ["zone-a"]), ep("10.0.0.2")],
            cluster: ["10.0.0.1", "10.0.0.2"], local: [], hasAny: true),
        Row(name: "hints ignored when none is for this zone",
            endpoints: [ep("10.0.0.1", hints: ["zone-b"]), ep("10.0.0.2", hints: ["zone-c"])],
            cluster: ["10.0.0.1", "10.0.0.2"], local: [], hasAny: true),
        Row(name: "hints ignored when the node has no zone",
            endpoints: [ep("10.0.0.1", hints: ["zone-a"]), ep("10.0.0.2", hints: ["zone-b"])],
            zone: nil, cluster: ["10.0.0.1", "10.0.0.2"], local: [], hasAny: true),
        Row(name: "not-ready endpoints without hints do not disable hints",
            endpoints: [ep("10.0.0.1", hints: ["zone-a"]), ep("10.0.0.2", hints: ["zone-b"]),
                        ep("10.0.0.3", ready: false, serving: false)],
            cluster: ["10.0.0.1"], local: [], hasAny: true),
        Row(name: "internalTrafficPolicy Local: only local ready endpoints, no cluster set",
            endpoints: [ep("10.0.0.1", local: true), ep("10.0.0.2")], internalLocal: true,
            cluster: [], local: ["10.0.0.1"], hasAny: true),
        Row(name: "internalTrafficPolicy Local, all endpoints remote: none local, but some exist (drop, not reject)",
            endpoints: [ep("10.0.0.1"), ep("10.0.0.2")], internalLocal: true,
            cluster: [], local: [], hasAny: true),
        Row(name: "externalTrafficPolicy Local: cluster endpoints for internal traffic, local for external",
            endpoints: [ep("10.0.0.1", local: true), ep("10.0.0.2")], externalLocal: true, externallyAccessible: true,
            cluster: ["10.0.0.1", "10.0.0.2"], local: ["10.0.0.1"], hasAny: true),
        Row(name: "externalTrafficPolicy Local ignored for a service that is not externally accessible",
            endpoints: [ep("10.0.0.1", local: true), ep("10.0.0.2")], externalLocal: true, externallyAccessible: false,
            cluster: ["10.0.0.1", "10.0.0.2"], local: [], hasAny: true),
        Row(name: "externalTrafficPolicy Local, local endpoint only serving-terminating: it is the local fallback",
            endpoints: [ep("10.0.0.1", ready: false, serving: true, terminating: true, local: true), ep("10.0.0.2")],
            externalLocal: true, externallyAccessible: true,
            cluster: ["10.0.0.2"], local: ["10.0.0.1"], hasAny: true),
        Row(name: "externalTrafficPolicy Local, local terminating but not serving: no local endpoint",
            endpoints: [ep("10.0.0.1", ready: false, serving: false, terminating: true, local: true), ep("10.0.0.2")],
            externalLocal: true, externallyAccessible: true,
            cluster: ["10.0.0.2"], local: [], hasAny: true),
        Row(name: "both policies Local, everything terminating: local serving-terminating ones used",
            endpoints: [ep("10.0.0.1", ready: false, serving: true, terminating: true, local: true),
                        ep("10.0.0.2", ready: false, serving: true, terminating: true)],
            internalLocal: true, externalLocal: true, externallyAccessible: true,
            cluster: ["10.0.0.2", "10.0.0.1"].sorted(), local: ["10.0.0.1"], hasAny: true),
        Row(name: "Local policy with hints: hints steer cluster endpoints, never local ones",
            endpoints: [ep("10.0.0.1", local: true, hints: ["zone-b"]), ep("10.0.0.2", hints: ["zone-a"])],
            externalLocal: true, externallyAccessible: true,
            cluster: ["10.0.0.2"], local: ["10.0.0.1"], hasAny: true),
    ]

    @Test(arguments: rows)
    func categorize(_ row: Row) {
        let result = EndpointSelection.categorize(
            row.endpoints,
            policies: .init(internalLocal: row.internalLocal, externalLocal: row.externalLocal,
                            externallyAccessible: row.externallyAccessible),
            zone: row.zone)
        #expect(result.cluster.map(\.ip.description).sorted() == row.cluster.sorted())
        #expect(result.local.map(\.ip.description).sorted() == row.local.sorted())
        #expect(result.hasAnyEndpoints == row.hasAny)
    }
}
