import KubeObjects
import Testing

/// Validation, row by row: each row is one object that either passes or fails on exactly one
/// field. A failing object is rejected with that field and its line; the valid objects before and
/// after it in the same text still load.
@Suite("Validation")
struct ValidationTests {
    struct Row: CustomTestStringConvertible, Sendable {
        var label: String
        /// The object under test, a whole YAML document. Its name must be `subject`.
        var document: String
        /// The field the first problem names; `nil` when the object is valid.
        var field: String?
        /// Text on the line the problem should point at (defaults to the object's first line).
        var at: String?
        var testDescription: String { label }

        static func valid(_ label: String, _ document: String) -> Row {
            Row(label: label, document: document, field: nil, at: nil)
        }
        static func invalid(_ label: String, _ field: String, at: String? = nil, _ document: String) -> Row {
            Row(label: label, document: document, field: field, at: at)
        }
    }

    /// A Service named `subject` with the given lines under `spec:` (and optionally `status:`).
    static func service(_ spec: String, status: String? = nil) -> String {
        var doc = """
            apiVersion: v1
            kind: Service
            metadata:
              name: subject
              namespace: default
            spec:
            \(indent(spec))
            """
        if let status { doc += "\nstatus:\n" + indent(status) }
        return doc
    }

    /// An EndpointSlice named `subject`, for service `web` unless `labels` says otherwise.
    static func slice(_ addressType: String, _ body: String,
                      labels: String = "kubernetes.io/service-name: web") -> String {
        """
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: subject
          namespace: default
          labels:
        \(indent(indent(labels)))
        addressType: \(addressType)
        \(body)
        """
    }

    static func indent(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
    }

    static let serviceRows: [Row] = [
        // Addresses.
        .valid("IPv4 cluster IP", service("clusterIP: 10.96.0.20\nports: [{port: 80}]")),
        .valid("IPv6 cluster IP", service("clusterIP: fd00:10:96::20\nipFamilies: [IPv6]\nports: [{port: 80}]")),
        .invalid("IPv4 cluster IP with an octet over 255", "spec.clusterIP", at: "clusterIP:",
                 service("clusterIP: 10.96.0.300\nports: [{port: 80}]")),
        .invalid("IPv4 cluster IP with three octets", "spec.clusterIP", at: "clusterIP:",
                 service("clusterIP: 10.96.1\nports: [{port: 80}]")),
        .invalid("IPv6 cluster IP with two ::", "spec.clusterIP", at: "clusterIP:",
                 service("clusterIP: fd00::10::20\nports: [{port: 80}]")),
        .invalid("IPv6 cluster IP with a bad group", "spec.clusterIP", at: "clusterIP:",
                 service("clusterIP: fd00:10:96::g1\nports: [{port: 80}]")),
        .invalid("cluster IP with a prefix length", "spec.clusterIP", at: "clusterIP:",
                 service("clusterIP: 10.96.0.20/32\nports: [{port: 80}]")),
        .invalid("invalid external IP", "spec.externalIPs[1]", at: "- 203.0.113.999",
                 service("clusterIP: 10.96.0.20\nexternalIPs:\n- 203.0.113.7\n- 203.0.113.999\nports: [{port: 80}]")),
        .invalid("invalid loadBalancerIP", "spec.loadBalancerIP", at: "loadBalancerIP",
                 service("type: LoadBalancer\nclusterIP: 10.96.0.20\nloadBalancerIP: lb.example.com\nports: [{port: 80}]")),
        .invalid("invalid LB ingress IP", "status.loadBalancer.ingress[0].ip", at: "- ip:",
                 service("type: LoadBalancer\nclusterIP: 10.96.0.20\nports: [{port: 80}]",
                         status: "loadBalancer:\n  ingress:\n  - ip: 203.0.113.256")),
        .valid("LB ingress with a hostname only", service("type: LoadBalancer\nclusterIP: 10.96.0.20\nports: [{port: 80}]",
                                                         status: "loadBalancer:\n  ingress:\n  - hostname: lb.example.com")),
        .valid("loadBalancerSourceRanges with spaces", service(
            "type: LoadBalancer\nclusterIP: 10.96.0.20\nloadBalancerSourceRanges: [' 198.51.100.0/24 ', 2001:db8::/32]\nports: [{port: 80}]")),
        .invalid("loadBalancerSourceRanges with a bad prefix", "spec.loadBalancerSourceRanges[0]",
                 at: "loadBalancerSourceRanges", service(
            "type: LoadBalancer\nclusterIP: 10.96.0.20\nloadBalancerSourceRanges: [198.51.100.0/33]\nports: [{port: 80}]")),

        // Ports.
        .valid("port 1", service("clusterIP: 10.96.0.20\nports: [{port: 1}]")),
        .valid("port 65535", service("clusterIP: 10.96.0.20\nports: [{port: 65535}]")),
        .invalid("port 0", "spec.ports[0].port", at: "- port: 0", service("clusterIP: 10.96.0.20\nports:\n- port: 0")),
        .invalid("port 70000", "spec.ports[0].port", at: "- port: 70000",
                 service("clusterIP: 10.96.0.20\nports:\n- port: 70000")),
        .invalid("negative port", "spec.ports[0].port", at: "- port: -1",
                 service("clusterIP: 10.96.0.20\nports:\n- port: -1")),
        .invalid("nodePort 70000", "spec.ports[0].nodePort", at: "nodePort: 70000",
                 service("type: NodePort\nclusterIP: 10.96.0.20\nports:\n- port: 80\n  nodePort: 70000")),
        .valid("nodePort 0 (not allocated)", service("type: NodePort\nclusterIP: 10.96.0.20\nports: [{port: 80, nodePort: 0}]")),
        .invalid("targetPort 0", "spec.ports[0].targetPort", at: "targetPort: 0",
                 service("clusterIP: 10.96.0.20\nports:\n- port: 80\n  targetPort: 0")),
        .valid("named targetPort", service("clusterIP: 10.96.0.20\nports: [{port: 80, targetPort: http}]")),
        .invalid("unknown protocol", "spec.ports[0].protocol", at: "protocol: ICMP",
                 service("clusterIP: 10.96.0.20\nports:\n- port: 80\n  protocol: ICMP")),
        .invalid("protocol in lower case", "spec.ports[0].protocol", at: "protocol: tcp",
                 service("clusterIP: 10.96.0.20\nports:\n- port: 80\n  protocol: tcp")),
        .valid("SCTP", service("clusterIP: 10.96.0.20\nports: [{port: 3868, protocol: SCTP}]")),
        .valid("same name-less port number on UDP and TCP needs names",
               service("clusterIP: 10.96.0.20\nports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53}]")),
        .invalid("duplicate port names", "spec.ports[1].name", at: "- name: http",
                 service("clusterIP: 10.96.0.20\nports:\n- {name: http, port: 80}\n- name: http\n  port: 8080")),
        .invalid("first port of two has no name", "spec.ports[0].name", at: "- port: 80",
                 service("clusterIP: 10.96.0.20\nports:\n- port: 80\n- name: https\n  port: 443")),
        .invalid("second port of two has no name", "spec.ports[1].name", at: "- port: 443",
                 service("clusterIP: 10.96.0.20\nports:\n- name: http\n  port: 80\n- port: 443")),
        .valid("single port without a name", service("clusterIP: 10.96.0.20\nports: [{port: 80}]")),
        .invalid("no ports", "spec.ports", at: "spec:", service("clusterIP: 10.96.0.20\nselector: {app: web}")),
        .valid("headless without ports", service("clusterIP: None\nselector: {app: web}")),
        .invalid("healthCheckNodePort 70000", "spec.healthCheckNodePort", at: "healthCheckNodePort",
                 service("type: LoadBalancer\nclusterIP: 10.96.0.20\nexternalTrafficPolicy: Local\nhealthCheckNodePort: 70000\nports: [{port: 80}]")),

        // Session affinity.
        .invalid("affinity timeout 0", "spec.sessionAffinityConfig.clientIP.timeoutSeconds", at: "timeoutSeconds",
                 service("clusterIP: 10.96.0.20\nports: [{port: 80}]\nsessionAffinity: ClientIP\nsessionAffinityConfig:\n  clientIP:\n    timeoutSeconds: 0")),
        .valid("affinity timeout 1", service(
            "clusterIP: 10.96.0.20\nports: [{port: 80}]\nsessionAffinity: ClientIP\nsessionAffinityConfig: {clientIP: {timeoutSeconds: 1}}")),
        .valid("affinity timeout 86400", service(
            "clusterIP: 10.96.0.20\nports: [{port: 80}]\nsessionAffinity: ClientIP\nsessionAffinityConfig: {clientIP: {timeoutSeconds: 86400}}")),
        .invalid("affinity timeout 86401", "spec.sessionAffinityConfig.clientIP.timeoutSeconds", at: "timeoutSeconds",
                 service("clusterIP: 10.96.0.20\nports: [{port: 80}]\nsessionAffinity: ClientIP\nsessionAffinityConfig:\n  clientIP:\n    timeoutSeconds: 86401")),
        .valid("affinity without a timeout (default 3h)", service(
            "clusterIP: 10.96.0.20\nports: [{port: 80}]\nsessionAffinity: ClientIP")),
        .invalid("unknown affinity", "spec.sessionAffinity", at: "sessionAffinity:",
                 service("clusterIP: 10.96.0.20\nports: [{port: 80}]\nsessionAffinity: Cookie")),

        // Dual stack.
        .valid("dual-stack IPv4 then IPv6", service(
            "clusterIP: 10.96.0.20\nclusterIPs: [10.96.0.20, fd00:10:96::20]\nipFamilies: [IPv4, IPv6]\nipFamilyPolicy: RequireDualStack\nports: [{port: 80}]")),
        .valid("dual-stack IPv6 then IPv4", service(
            "clusterIP: fd00:10:96::20\nclusterIPs: [fd00:10:96::20, 10.96.0.20]\nipFamilies: [IPv6, IPv4]\nipFamilyPolicy: PreferDualStack\nports: [{port: 80}]")),
        .invalid("dual-stack with two IPv4 addresses", "spec.clusterIPs", at: "clusterIPs:", service(
            "clusterIP: 10.96.0.20\nclusterIPs: [10.96.0.20, 10.96.0.21]\nipFamilyPolicy: RequireDualStack\nports: [{port: 80}]")),
        .invalid("dual-stack with two IPv6 addresses", "spec.clusterIPs", at: "clusterIPs:", service(
            "clusterIP: fd00:10:96::20\nclusterIPs: [fd00:10:96::20, fd00:10:96::21]\nports: [{port: 80}]")),
        .invalid("three cluster IPs", "spec.clusterIPs", at: "clusterIPs:", service(
            "clusterIP: 10.96.0.20\nclusterIPs: [10.96.0.20, fd00:10:96::20, 10.96.0.21]\nports: [{port: 80}]")),
        .invalid("ipFamilies in the wrong order", "spec.ipFamilies[0]", at: "ipFamilies:", service(
            "clusterIP: 10.96.0.20\nclusterIPs: [10.96.0.20, fd00:10:96::20]\nipFamilies: [IPv6, IPv4]\nports: [{port: 80}]")),
        .invalid("IPv6 family for an IPv4 address", "spec.ipFamilies[0]", at: "ipFamilies:", service(
            "clusterIP: 10.96.0.20\nclusterIPs: [10.96.0.20]\nipFamilies: [IPv6]\nports: [{port: 80}]")),
        .invalid("IPv6 family for an IPv4 clusterIP (no clusterIPs)", "spec.ipFamilies[0]", at: "ipFamilies:", service(
            "clusterIP: 10.96.0.20\nipFamilies: [IPv6]\nports: [{port: 80}]")),
        .invalid("invalid first cluster IP does not shift the family check", "spec.clusterIPs[0]", at: "clusterIPs:", service(
            "clusterIPs: [10.96.0.300, 'fd00:10:96::20']\nipFamilies: [IPv4, IPv6]\nports: [{port: 80}]")),
        .invalid("the same family twice", "spec.ipFamilies", at: "ipFamilies:", service(
            "clusterIP: 10.96.0.20\nipFamilies: [IPv4, IPv4]\nports: [{port: 80}]")),
        .invalid("clusterIPs[0] differs from clusterIP", "spec.clusterIPs[0]", at: "clusterIPs:", service(
            "clusterIP: 10.96.0.20\nclusterIPs: [10.96.0.21]\nports: [{port: 80}]")),
        .invalid("invalid second cluster IP", "spec.clusterIPs[1]", at: "clusterIPs:", service(
            "clusterIP: 10.96.0.20\nclusterIPs: [10.96.0.20, 'fd00:10:96::2::0']\nports: [{port: 80}]")),
        .invalid("unknown ipFamilyPolicy", "spec.ipFamilyPolicy", at: "ipFamilyPolicy", service(
            "clusterIP: 10.96.0.20\nipFamilyPolicy: DualStack\nports: [{port: 80}]")),

        // ExternalName.
        .valid("ExternalName", service("type: ExternalName\nexternalName: db.example.com")),
        .invalid("ExternalName without a name", "spec.externalName", at: "spec:", service("type: ExternalName")),
    ]

    static let sliceRows: [Row] = [
        .valid("IPv4 slice", slice("IPv4", "endpoints:\n- addresses: [10.244.1.5]\nports: [{name: http, port: 8080}]")),
        .valid("IPv6 slice", slice("IPv6", "endpoints:\n- addresses: ['fd00:10:244:1::5']\nports: [{name: http, port: 8080}]")),
        .valid("slice with no endpoints", slice("IPv4", "endpoints: []\nports: []")),
        .invalid("IPv6 address in an IPv4 slice", "endpoints[1].addresses[0]", at: "fd00:10:244:1::5",
                 slice("IPv4", "endpoints:\n- addresses: [10.244.1.4]\n- addresses:\n  - fd00:10:244:1::5\nports: [{port: 8080}]")),
        .invalid("IPv4 address in an IPv6 slice", "endpoints[0].addresses[0]", at: "- 10.244.1.5",
                 slice("IPv6", "endpoints:\n- addresses:\n  - 10.244.1.5\nports: [{port: 8080}]")),
        .invalid("invalid endpoint address", "endpoints[0].addresses[0]", at: "- 10.244.1.500",
                 slice("IPv4", "endpoints:\n- addresses:\n  - 10.244.1.500\nports: [{port: 8080}]")),
        .invalid("endpoint without addresses", "endpoints[0].addresses", at: "- addresses: []",
                 slice("IPv4", "endpoints:\n- addresses: []\nports: [{port: 8080}]")),
        .invalid("no service-name label", "metadata.labels[kubernetes.io/service-name]", at: "labels:",
                 slice("IPv4", "endpoints:\n- addresses: [10.244.1.5]\nports: [{port: 8080}]", labels: "app: web")),
        .invalid("empty service-name label", "metadata.labels[kubernetes.io/service-name]", at: "labels:",
                 slice("IPv4", "endpoints:\n- addresses: [10.244.1.5]\nports: [{port: 8080}]",
                       labels: "kubernetes.io/service-name: ''")),
        .invalid("slice port 0", "ports[0].port", at: "- port: 0",
                 slice("IPv4", "endpoints:\n- addresses: [10.244.1.5]\nports:\n- port: 0")),
        .invalid("slice port 70000", "ports[0].port", at: "- port: 70000",
                 slice("IPv4", "endpoints:\n- addresses: [10.244.1.5]\nports:\n- port: 70000")),
        .invalid("duplicate slice port names", "ports[1].name", at: "- name: http",
                 slice("IPv4", "endpoints:\n- addresses: [10.244.1.5]\nports:\n- {name: http, port: 80}\n- name: http\n  port: 81")),
        .invalid("unknown addressType", "addressType", at: "addressType:",
                 slice("IPv5", "endpoints:\n- addresses: [10.244.1.5]")),
        .invalid("unknown slice port protocol", "ports[0].protocol", at: "protocol: QUIC",
                 slice("IPv4", "endpoints:\n- addresses: [10.244.1.5]\nports:\n- port: 443\n  protocol: QUIC")),
        .invalid("ready as a word", "endpoints[0].conditions.ready", at: "ready: maybe",
                 slice("IPv4", "endpoints:\n- addresses: [10.244.1.5]\n  conditions:\n    ready: maybe")),
    ]

    static let nodeRows: [Row] = [
        .valid("node with labels and addresses", """
            apiVersion: v1
            kind: Node
            metadata:
              name: subject
              labels: {topology.kubernetes.io/zone: zone-a}
            status:
              addresses: [{type: InternalIP, address: 192.168.50.10}]
            """),
        .invalid("node address without a type", "status.addresses[0].type", at: "- address:", """
            apiVersion: v1
            kind: Node
            metadata: {name: subject}
            status:
              addresses:
              - address: 192.168.50.10
            """),
    ]

    /// Puts the row's object between two valid ones and checks what loads and what is reported.
    func check(_ row: Row) throws {
        let before = """
            apiVersion: v1
            kind: Service
            metadata: {name: before, namespace: default}
            spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}
            """
        let after = """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: after, namespace: default, labels: {kubernetes.io/service-name: before}}
            addressType: IPv4
            endpoints: [{addresses: [10.244.1.9], nodeName: node-a}]
            ports: [{name: http, port: 8080}]
            """
        let text = [before, row.document, after].joined(separator: "\n---\n")
        let contents = ManifestDecoder.decode(text, file: "rows.yaml")
        #expect(contents.syntaxError == nil, "\(contents.syntaxError.map(String.init(describing:)) ?? "")")
        guard let field = row.field else {
            #expect(contents.problems.isEmpty, "\(contents.problems)")
            #expect(contents.objects.count == 3)
            return
        }
        // The others still load.
        #expect(contents.ids == ["Service default/before", "EndpointSlice default/after"])
        try #require(contents.rejected.count == 1, "\(contents.problems)")
        let (id, problem) = contents.rejected[0]
        #expect(id?.name.name == "subject")
        #expect(problem.field == field, "\(problem)")
        #expect(problem.file == "rows.yaml")
        // The line: of the marker text, searched from the subject's document on.
        let documentStart = line(of: "---", in: text)! + 1
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let marker = row.at ?? "kind:"
        let expected = lines.indices.first { $0 + 1 >= documentStart && lines[$0].contains(marker) }.map { $0 + 1 }
        #expect(problem.line == expected, "\(problem), expected line \(expected ?? -1) in\n\(text)")
    }

    @Test("services", arguments: serviceRows)
    func services(_ row: Row) throws { try check(row) }

    @Test("endpoint slices", arguments: sliceRows)
    func slices(_ row: Row) throws { try check(row) }

    @Test("nodes", arguments: nodeRows)
    func nodes(_ row: Row) throws { try check(row) }

    /// `validate()` reports every problem, not only the first, so a user can fix them in one go.
    @Test func everyProblemIsReported() {
        var spec = ServiceSpec(clusterIP: "10.96.0.300", ports: [ServicePort(port: 0), ServicePort(port: 70000)])
        spec.sessionAffinity = .clientIP
        spec.sessionAffinityConfig = SessionAffinityConfig(clientIP: ClientIPConfig(timeoutSeconds: 0))
        let svc = Service(metadata: ObjectMeta(name: "x"), spec: spec)
        let fields = svc.validate().map(\.field)
        #expect(fields == ["spec.clusterIP", "spec.ports[0].port", "spec.ports[0].name", "spec.ports[1].port",
                           "spec.ports[1].name", "spec.sessionAffinityConfig.clientIP.timeoutSeconds"])
    }

    @Test func anInvalidClusterIPIsNotAlsoAFamilyMismatch() {
        var spec = ServiceSpec(clusterIPs: ["10.96.0.300", "fd00:10:96::20"], ports: [ServicePort(port: 80)])
        spec.ipFamilies = [.ipv4, .ipv6]
        #expect(Service(metadata: ObjectMeta(name: "x"), spec: spec).validate().map(\.field) == ["spec.clusterIPs[0]"])
    }

    @Test func rejectedObjectMessageCountsTheOtherProblems() throws {
        let contents = ManifestDecoder.decode(Self.service("clusterIP: 10.96.0.300\nports: [{port: 0}]"))
        let problem = try #require(contents.rejected.first?.problem)
        #expect(problem.field == "spec.clusterIP")
        #expect(problem.message.contains("and 1 more: spec.ports[0].port"), "\(problem.message)")
    }

    @Test func emptyNameIsInvalid() {
        let node = Node(metadata: ObjectMeta(name: ""))
        #expect(node.validate().map(\.field) == ["metadata.name"])
        #expect(KubeObject.node(node).validate().count == 1)
    }
}
