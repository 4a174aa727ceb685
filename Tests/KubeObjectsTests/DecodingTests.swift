import KubeObjects
import NetworkTypes
import Testing

/// Objects as a cluster operator has them: `kubectl get -o yaml|json`, API server lists, and
/// hand-written multi-document files, with all the fields kproxy does not read.
@Suite("Decoding manifests")
struct DecodingTests {
    @Test func serviceFromKubectlYAML() throws {
        let contents = ManifestDecoder.decode(try fixture("service-kubectl.yaml"), file: "svc.yaml")
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        #expect(contents.ids == ["Service prod/api"])
        let svc = try #require(contents.services.first)
        #expect(svc.metadata.uid == "0f6e2c55-2a87-4d5c-b9b3-1e6f9d2c8a41")
        #expect(svc.metadata.resourceVersion == "48213")
        #expect(svc.metadata.labels == ["app": "api"])
        #expect(svc.spec.effectiveType == .nodePort)
        #expect(svc.spec.allClusterIPs == ["10.96.44.12"])
        #expect(svc.spec.ipFamilies == [.ipv4])
        #expect(svc.spec.ipFamilyPolicy == .singleStack)
        #expect(svc.spec.externalTrafficPolicy == .cluster)
        #expect(svc.spec.sessionAffinity == ServiceAffinity.none)
        let ports = try #require(svc.spec.ports)
        #expect(ports.map(\.name) == ["http", "grpc"])
        #expect(ports.map(\.port) == [80, 9090])
        #expect(ports.map(\.nodePort) == [31234, 30999])
        #expect(ports[0].targetPort == .string("http"))
        #expect(ports[1].targetPort == .int(9090))
        #expect(ports.allSatisfy { $0.effectiveProtocol == .tcp })
        #expect(contents.objects.first?.line == 1)
    }

    @Test func serviceFromKubectlJSON() throws {
        let contents = ManifestDecoder.decode(try fixture("service-kubectl.json"), file: "svc.json")
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        let svc = try #require(contents.services.first)
        #expect(svc.id == NamespacedName(namespace: "prod", name: "gateway"))
        #expect(svc.spec.effectiveType == .loadBalancer)
        #expect(svc.spec.allClusterIPs == ["10.96.44.20", "fd00:10:96::2c14"])
        #expect(svc.spec.ipFamilies == [.ipv4, .ipv6])
        #expect(svc.spec.ipFamilyPolicy == .preferDualStack)
        #expect(svc.spec.externalTrafficPolicy == .local)
        #expect(svc.spec.healthCheckNodePort == 31877)
        #expect(svc.spec.loadBalancerSourceRanges == ["198.51.100.0/24"])
        #expect(svc.spec.sessionAffinity == .clientIP)
        #expect(svc.spec.sessionAffinityConfig?.clientIP?.timeoutSeconds == 10800)
        let ingress = try #require(svc.status?.loadBalancer?.ingress)
        #expect(ingress.map(\.ip) == ["203.0.113.50", nil])
        #expect(ingress.map(\.hostname) == [nil, "gw.example.com"])
        #expect(ingress.first?.ipMode == "VIP")
    }

    @Test func endpointSliceFromKubectlYAML() throws {
        let contents = ManifestDecoder.decode(try fixture("endpointslice-kubectl.yaml"))
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        let slice = try #require(contents.slices.first)
        #expect(slice.id == NamespacedName(namespace: "prod", name: "api-8fj2s"))
        #expect(slice.serviceID == NamespacedName(namespace: "prod", name: "api"))
        #expect(slice.addressType == .ipv4)
        let eps = try #require(slice.endpoints)
        #expect(eps.map(\.addresses) == [["10.244.1.31"], ["10.244.2.31"], ["10.244.3.31"]])
        #expect(eps.map(\.effectiveNodeName) == ["node-a", "node-b", "node-c"])
        #expect(eps.map(\.effectiveZone) == ["zone-a", "zone-b", "zone-c"])
        // ready / serving / terminating, with Kubernetes' defaults for unset conditions.
        #expect(eps.map(\.isReady) == [true, false, false])
        #expect(eps.map(\.isServing) == [true, true, false])
        #expect(eps.map(\.isTerminating) == [false, true, false])
        #expect(eps[1].hints?.forZones?.map(\.name) == ["zone-b"])
        #expect(slice.ports?.map(\.name) == ["grpc", "http"])
        #expect(slice.ports?.map(\.port) == [9090, 8080])
        #expect(slice.ports?.last?.appProtocol == "http")
    }

    @Test func v1beta1TopologyGivesNodeAndZone() throws {
        let contents = ManifestDecoder.decode(try fixture("endpointslice-v1beta1.yaml"))
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        let slice = try #require(contents.slices.first)
        #expect(slice.apiVersion == "discovery.k8s.io/v1beta1")
        let eps = try #require(slice.endpoints)
        #expect(eps.map(\.nodeName) == [nil, nil])
        #expect(eps.map(\.effectiveNodeName) == ["node-a", "node-b"])
        #expect(eps.map(\.effectiveZone) == ["zone-a", "zone-b"])
    }

    @Test func v1FieldsWinOverV1beta1Topology() {
        var ep = SliceEndpoint(addresses: ["10.0.0.1"], nodeName: "node-x", zone: "zone-x")
        ep.topology = [WellKnownLabels.hostname: "node-y", WellKnownLabels.zone: "zone-y"]
        #expect(ep.effectiveNodeName == "node-x")
        #expect(ep.effectiveZone == "zone-x")
    }

    @Test func nodeFromKubectlYAML() throws {
        let contents = ManifestDecoder.decode(try fixture("node-kubectl.yaml"))
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        let node = try #require(contents.nodes.first)
        #expect(contents.ids == ["Node node-a"])
        #expect(node.zone == "zone-a")
        #expect(node.status?.addresses?.map(\.address) == ["192.168.50.10", "fd00:192:168:50::10", "node-a"])
        #expect(node.status?.addresses?.map(\.type) == ["InternalIP", "InternalIP", "Hostname"])
    }

    @Test func serviceListItemsTakeTheirKindFromTheList() throws {
        // The API server leaves `kind` and `apiVersion` out of list items.
        let contents = ManifestDecoder.decode(try fixture("servicelist-api.json"))
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        #expect(contents.ids == ["Service default/kubernetes", "Service monitoring/metrics"])
        let metrics = try #require(contents.services.last)
        #expect(metrics.spec.ports?.first?.effectiveProtocol == .udp)
        #expect(metrics.spec.ports?.first?.name == nil)
    }

    @Test func endpointSliceListAndNodeListInYAML() {
        let contents = ManifestDecoder.decode("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSliceList
            metadata: {resourceVersion: "77"}
            items:
            - metadata:
                name: web-1
                namespace: default
                labels: {kubernetes.io/service-name: web}
              addressType: IPv6
              endpoints: [{addresses: ["fd00:10:244:1::5"], nodeName: node-a}]
              ports: [{port: 8080}]
            ---
            apiVersion: v1
            kind: NodeList
            items:
            - metadata: {name: node-a, labels: {topology.kubernetes.io/zone: zone-a}}
            - metadata: {name: node-b}
            """)
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        #expect(contents.ids == ["EndpointSlice default/web-1", "Node node-a", "Node node-b"])
        #expect(contents.nodes.map(\.zone) == ["zone-a", nil])
    }

    @Test func listOfMixedKindsKeepsOurKindsAndIgnoresTheRest() throws {
        let text = try fixture("list-mixed.yaml")
        let contents = ManifestDecoder.decode(text)
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        #expect(contents.ids == ["Service prod/api", "EndpointSlice prod/api-8fj2s"])
        #expect(contents.ignoredKinds == ["Deployment", "ConfigMap"])
        // Each item reports the line it starts on.
        #expect(contents.objects.map(\.line) == [line(of: "- apiVersion: v1", in: text),
                                                  line(of: "- addressType: IPv4", in: text)].compactMap { $0 })
    }

    @Test func multiDocumentWithUnknownKindsFieldsAndEmptyDocuments() throws {
        let text = try fixture("multi-document.yaml")
        let contents = ManifestDecoder.decode(text)
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        #expect(contents.ids == ["Service tools/grafana", "EndpointSlice tools/grafana-abcde"])
        #expect(contents.ignoredKinds == ["Namespace", "Deployment"])
        let svc = try #require(contents.services.first)
        #expect(svc.spec.ports?.first?.appProtocol == "http")
        // Only the annotations kproxy reads are kept (not kubectl's copy of the whole object).
        #expect(svc.metadata.annotations == ["service.kubernetes.io/topology-mode": "Auto"])
        let slice = try #require(contents.slices.first)
        #expect(slice.ports?.first?.name == nil)
        #expect(slice.endpoints?.first?.addresses == ["10.244.2.50"])
        #expect(contents.objects.map(\.line) == [line(of: "kind: Service", in: text)! - 1,
                                                  line(of: "kind: EndpointSlice", in: text)! - 1])
    }

    @Test("an empty or comment-only text holds nothing", arguments: ["", "\n\n", "# nothing here\n", "---\n---\n", "null\n"])
    func emptyText(_ text: String) {
        let contents = ManifestDecoder.decode(text)
        #expect(contents.objects.isEmpty)
        #expect(contents.problems.isEmpty)
    }

    @Test func sameKindFromAnotherAPIGroupIsIgnored() {
        let contents = ManifestDecoder.decode("""
            apiVersion: serving.knative.dev/v1
            kind: Service
            metadata: {name: hello, namespace: apps}
            spec:
              template:
                spec:
                  containers: [{image: ghcr.io/knative/helloworld-go:latest}]
            ---
            apiVersion: serving.knative.dev/v1
            kind: ServiceList
            items:
            - metadata: {name: hello2}
              spec: {template: {}}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: hello, namespace: apps}
            spec: {clusterIP: 10.96.3.3, ports: [{port: 80}]}
            ---
            kind: Service
            metadata: {name: handwritten, namespace: apps}
            spec: {clusterIP: 10.96.3.4, ports: [{port: 80}]}
            """)
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        #expect(contents.ids == ["Service apps/hello", "Service apps/handwritten"])
        #expect(contents.ignoredKinds == ["Service (serving.knative.dev/v1)", "Service (serving.knative.dev/v1)"])
    }

    /// The same Service, spelled the ways editors and tools write it.
    @Test("text variants decode alike", arguments: [
        ("YAML", "apiVersion: v1\nkind: Service\nmetadata:\n  name: v\nspec:\n  clusterIP: 10.96.0.9\n  ports:\n  - port: 80\n"),
        ("YAML with CRLF line ends", "apiVersion: v1\r\nkind: Service\r\nmetadata:\r\n  name: v\r\nspec:\r\n  clusterIP: 10.96.0.9\r\n  ports:\r\n  - port: 80\r\n"),
        ("YAML with a byte order mark", "\u{FEFF}apiVersion: v1\nkind: Service\nmetadata:\n  name: v\nspec:\n  clusterIP: 10.96.0.9\n  ports:\n  - port: 80\n"),
        ("JSON on one line", #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"v"},"spec":{"clusterIP":"10.96.0.9","ports":[{"port":80}]}}"#),
        ("JSON indented with tabs", "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"Service\",\n\t\"metadata\": {\"name\": \"v\"},\n\t\"spec\": {\n\t\t\"clusterIP\": \"10.96.0.9\",\n\t\t\"ports\": [{\"port\": 80}]\n\t}\n}\n"),
        ("YAML with a document end marker", "apiVersion: v1\nkind: Service\nmetadata: {name: v}\nspec: {clusterIP: 10.96.0.9, ports: [{port: 80}]}\n...\n"),
    ])
    func textVariants(_ label: String, _ text: String) throws {
        let contents = ManifestDecoder.decode(text)
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        let svc = try #require(contents.services.first)
        #expect(svc.id == NamespacedName(namespace: "default", name: "v"))
        #expect(svc.spec.allClusterIPs == ["10.96.0.9"])
        #expect(svc.spec.ports?.map(\.port) == [80])
    }

    @Test func lineNumbersCountCRLFLinesOnce() throws {
        let text = "apiVersion: v1\r\nkind: Service\r\nmetadata:\r\n  name: v\r\nspec:\r\n  ports:\r\n  - port: 0\r\n"
        let problem = try #require(ManifestDecoder.decode(text).problems.first)
        #expect(problem.line == 7, "\(problem)")
    }

    @Test func placeholderSliceWithNullEndpointsAndPorts() {
        let contents = ManifestDecoder.decode("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: idle-x1
              namespace: default
              labels:
                kubernetes.io/service-name: idle
            addressType: IPv4
            endpoints: null
            ports: null
            """)
        #expect(contents.problems.isEmpty)
        #expect(contents.slices.first?.endpoints == nil)
        #expect(contents.slices.first?.ports == nil)
    }

    @Test func fqdnSliceIsAcceptedWithoutAddressChecks() {
        let contents = ManifestDecoder.decode("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: ext-1, labels: {kubernetes.io/service-name: ext}}
            addressType: FQDN
            endpoints:
            - addresses: [db.example.com]
            ports: [{name: pg, port: 5432}]
            """)
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        #expect(contents.slices.first?.addressType == .fqdn)
        #expect(contents.slices.first?.id.namespace == "default")
    }

    @Test func headlessAndExternalNameServicesDecode() {
        let contents = ManifestDecoder.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: db, namespace: data}
            spec: {clusterIP: None, clusterIPs: [None], selector: {app: db}}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: ext, namespace: data}
            spec: {type: ExternalName, externalName: db.example.com}
            """)
        #expect(contents.problems.isEmpty, "\(contents.problems)")
        #expect(contents.services.map(\.spec.isHeadless) == [true, false])
        #expect(contents.services.map(\.spec.allClusterIPs) == [[], []])
        #expect(contents.services.last?.spec.effectiveType == .externalName)
    }

    @Test func problemsNameTheFile() {
        let contents = ManifestDecoder.decode("kind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 0}]}\n",
                                              file: "deploy/x.yaml")
        let problem = contents.problems.first
        #expect(problem?.file == "deploy/x.yaml")
        #expect(problem?.description.hasPrefix("deploy/x.yaml:3: Service default/x: spec.ports[0].port: ") == true,
                "\(problem?.description ?? "")")
    }
}
