import KubeObjects
import Testing

/// How YAML scalars become typed fields (kproxy's own decoder over the parsed tree): YAML 1.1
/// booleans, integer notations, null forms, quoting and explicit tags, anchors and aliases.
@Suite("YAML scalars")
struct YAMLScalarTests {
    static func service(_ spec: String) -> ManifestContents {
        ManifestDecoder.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: default}
            spec:
            \(spec)
            """)
    }

    @Test func integersInEveryNotationYAMLAllows() throws {
        let c = Self.service("""
              clusterIP: 10.96.0.10
              ports:
              - {name: a, port: 80}
              - {name: b, port: 0x50, targetPort: 8_080}
              - {name: c, port: !!int "81"}
            """)
        #expect(c.problems.isEmpty, "\(c.problems)")
        let ports = try #require(c.services.first?.spec.ports)
        #expect(ports.map(\.port) == [80, 80, 81])
        #expect(ports[1].targetPort == .int(8080))
    }

    @Test func aQuotedNumberIsAStringAndRefusedWhereAnIntegerIsExpected() {
        let c = Self.service("""
              clusterIP: 10.96.0.10
              ports: [{port: "80"}]
            """)
        #expect(c.objects.isEmpty)
        #expect(c.problems.first?.field == "spec.ports[0].port")
        #expect(c.problems.first?.message == "expected an integer")
    }

    @Test func numbersAndBooleansWhereAStringIsExpectedKeepTheirText() throws {
        // `targetPort: http` is a name, `targetPort: 8080` a number; a plain `1.0` label is the text "1.0".
        let c = ManifestDecoder.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: default, labels: {version: 1.0, canary: true}}
            spec:
              clusterIP: 10.96.0.10
              ports: [{name: http, port: 80, targetPort: http}, {name: 8443, port: 443, targetPort: 8443}]
            """)
        #expect(c.problems.isEmpty, "\(c.problems)")
        let svc = try #require(c.services.first)
        #expect(svc.metadata.labels == ["version": "1.0", "canary": "true"])
        #expect(svc.spec.ports?.map(\.targetPort) == [.string("http"), .int(8443)])
        #expect(svc.spec.ports?.last?.name == "8443")
    }

    /// A slice of service `web` with an unnamed port and these endpoint lines.
    static func slice(_ endpoints: String) -> ManifestContents {
        ManifestDecoder.decode("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
            addressType: IPv4
            ports: [{name: ~, port: 8080}]
            endpoints:
            \(endpoints)
            """)
    }

    @Test func booleansAndNullsAsYAML11WritesThem() throws {
        let endpoints = """
            - {addresses: [10.244.1.2], conditions: {ready: yes, serving: on, terminating: False}}
            - {addresses: [10.244.1.3], conditions: {ready: no}, nodeName: null}
            """
        // A quoted "true" is a string: that slice is refused, naming the field.
        let c = Self.slice(endpoints + "\n- {addresses: [10.244.1.4], conditions: {ready: \"true\"}}")
        #expect(c.objects.isEmpty)
        #expect(c.problems.first?.field == "endpoints[2].conditions.ready")

        let fixed = Self.slice(endpoints)
        #expect(fixed.problems.isEmpty, "\(fixed.problems)")
        let slice = try #require(fixed.slices.first)
        #expect(slice.ports?.first?.name == nil)
        let eps = try #require(slice.endpoints)
        #expect(eps.map(\.isReady) == [true, false])
        #expect(eps[0].isServing && !eps[0].isTerminating)
        #expect(eps[1].nodeName == nil)
    }

    @Test func anchorsAndAliasesAreFollowed() throws {
        let c = ManifestDecoder.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: default, labels: &labels {app: web, tier: front}}
            spec:
              clusterIP: 10.96.0.10
              selector: *labels
              ports: [{name: http, port: 80}]
            """)
        #expect(c.problems.isEmpty, "\(c.problems)")
        let svc = try #require(c.services.first)
        #expect(svc.spec.selector == ["app": "web", "tier": "front"])
        #expect(svc.metadata.labels == svc.spec.selector)
    }
}
