import KubeObjects
import Testing

/// Broken text and wrong types: the problem says where (line, field) and what, and the rest of
/// the text still loads.
@Suite("Decoding problems")
struct DecodingProblemTests {
    /// A text that cannot be parsed, and the line the parser should blame.
    struct SyntaxRow: CustomTestStringConvertible, Sendable {
        var label: String
        var text: String
        var line: Int
        var testDescription: String { label }
    }

    static let syntaxRows: [SyntaxRow] = [
        SyntaxRow(label: "unterminated quoted string", text: """
            apiVersion: v1
            kind: Service
            metadata:
              name: "web
              namespace: default
            spec:
              ports: [{port: 80}]
            """, line: 4),
        SyntaxRow(label: "key indented less than its siblings", text: """
            apiVersion: v1
            kind: Service
            metadata:
              name: web
             namespace: default
            spec:
              ports: [{port: 80}]
            """, line: 5),
        SyntaxRow(label: "tab used for indentation", text: """
            apiVersion: v1
            kind: Service
            metadata:
            \tname: web
            """, line: 4),
        SyntaxRow(label: "unclosed flow sequence", text: """
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              ports: [{port: 80}
              selector: {app: web}
            """, line: 6),
        SyntaxRow(label: "JSON with a missing comma", text: """
            {
              "apiVersion": "v1",
              "kind": "Service"
              "metadata": {"name": "web"}
            }
            """, line: 4),
        SyntaxRow(label: "a sequence item inside a mapping", text: """
            apiVersion: v1
            kind: Service
            metadata:
              name: web
              - namespace: default
            """, line: 5),
    ]

    @Test("syntax errors report their line", arguments: syntaxRows)
    func syntaxErrorLine(_ row: SyntaxRow) throws {
        let contents = ManifestDecoder.decode(row.text, file: "broken.yaml")
        let problem = try #require(contents.syntaxError, "no syntax error reported")
        #expect(problem.line == row.line, "\(problem)")
        #expect(problem.file == "broken.yaml")
        #expect(contents.problems == [problem])
    }

    @Test func documentsBeforeASyntaxErrorStillLoad() throws {
        let text = """
            apiVersion: v1
            kind: Service
            metadata: {name: first}
            spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: "second}
            """
        let contents = ManifestDecoder.decode(text)
        #expect(contents.ids == ["Service default/first"])
        #expect(try #require(contents.syntaxError).line == 8)
    }

    @Test func duplicateKeysAreASyntaxError() throws {
        let text = """
            apiVersion: v1
            kind: Service
            metadata:
              name: a
              name: b
            spec: {ports: [{port: 80}]}
            """
        let contents = ManifestDecoder.decode(text)
        let problem = try #require(contents.syntaxError)
        #expect(problem.message.contains("name"), "\(problem)")
        #expect(contents.objects.isEmpty)
    }

    /// An object that parses but does not decode: its problem names the field and its line, and
    /// the valid objects around it still load.
    struct TypeRow: CustomTestStringConvertible, Sendable {
        var label: String
        /// The Service's body from `spec:` on.
        var body: String
        var field: String
        /// Text on the line the problem should point at.
        var at: String
        var message: String? = nil
        var testDescription: String { label }
    }

    static let typeRows: [TypeRow] = [
        TypeRow(label: "port as a word", body: """
            spec:
              clusterIP: 10.96.0.20
              ports:
              - name: http
                port: "eighty"
            """, field: "spec.ports[0].port", at: "port: \"eighty\"", message: "expected an integer"),
        TypeRow(label: "second port's nodePort is a list", body: """
            spec:
              type: NodePort
              ports:
              - {name: a, port: 80}
              - name: b
                port: 81
                nodePort: [30001]
            """, field: "spec.ports[1].nodePort", at: "nodePort: [30001]"),
        TypeRow(label: "ports is a mapping", body: """
            spec:
              ports:
                port: 80
            """, field: "spec.ports", at: "ports:"),
        TypeRow(label: "port missing", body: """
            spec:
              ports:
              - name: http
                targetPort: 8080
            """, field: "spec.ports[0].port", at: "- name: http", message: "required field is missing"),
        TypeRow(label: "unknown protocol", body: """
            spec:
              ports:
              - port: 80
                protocol: ICMP
            """, field: "spec.ports[0].protocol", at: "protocol: ICMP",
            message: #"unsupported value "ICMP": supported values: "TCP", "UDP", "SCTP""#),
        TypeRow(label: "unknown IP family", body: """
            spec:
              ipFamilies: [IPv5]
              ports: [{port: 80}]
            """, field: "spec.ipFamilies[0]", at: "ipFamilies", message: "supported values"),
        TypeRow(label: "unknown service type", body: """
            spec:
              type: Ingress
              ports: [{port: 80}]
            """, field: "spec.type", at: "type: Ingress", message: "supported values"),
        TypeRow(label: "unknown traffic policy", body: """
            spec:
              externalTrafficPolicy: Nearest
              ports: [{port: 80}]
            """, field: "spec.externalTrafficPolicy", at: "externalTrafficPolicy"),
        TypeRow(label: "timeout as a string", body: """
            spec:
              ports: [{port: 80}]
              sessionAffinity: ClientIP
              sessionAffinityConfig:
                clientIP:
                  timeoutSeconds: soon
            """, field: "spec.sessionAffinityConfig.clientIP.timeoutSeconds", at: "timeoutSeconds"),
        TypeRow(label: "spec missing", body: """
            status: {}
            """, field: "spec", at: "apiVersion: v1", message: "required field is missing"),
    ]

    @Test("wrong types name the field and its line", arguments: typeRows)
    func wrongType(_ row: TypeRow) throws {
        let text = """
            apiVersion: v1
            kind: Service
            metadata: {name: before, namespace: default}
            spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
            ---
            apiVersion: v1
            kind: Service
            metadata:
              name: broken
              namespace: default
            \(row.body)
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: after, namespace: default}
            spec: {clusterIP: 10.96.0.11, ports: [{port: 80}]}
            """
        let contents = ManifestDecoder.decode(text, file: "t.yaml")
        #expect(contents.syntaxError == nil)
        #expect(contents.ids == ["Service default/before", "Service default/after"])
        try #require(contents.rejected.count == 1, "\(contents.problems)")
        let (id, problem) = contents.rejected[0]
        #expect(id?.description == "Service default/broken")
        #expect(problem.object == "Service default/broken")
        #expect(problem.field == row.field, "\(problem)")
        // The line of the offending field, searched for below the broken object's name.
        let start = line(of: "name: broken", in: text)!
        let expected = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            .first { $0.offset + 1 >= start - 3 && $0.element.contains(row.at) }.map { $0.offset + 1 }
        #expect(problem.line == expected, "\(problem)")
        if let message = row.message { #expect(problem.message.contains(message), "\(problem)") }
    }

    @Test func objectWithoutNameIsRejected() throws {
        let contents = ManifestDecoder.decode("""
            apiVersion: v1
            kind: Service
            metadata: {namespace: default}
            spec: {ports: [{port: 80}]}
            """)
        let (id, problem) = try #require(contents.rejected.first)
        #expect(id == nil)
        #expect(problem.field == "metadata.name")
        #expect(problem.line == 3)
    }

    @Test func documentWithoutKindIsRejected() throws {
        let contents = ManifestDecoder.decode("apiVersion: v1\nmetadata: {name: x}\n---\nkind: Node\nmetadata: {name: n1}\n")
        #expect(contents.ids == ["Node n1"])
        let problem = try #require(contents.rejected.first?.problem)
        #expect(problem.field == "kind")
        #expect(problem.line == 1)
    }

    @Test func documentThatIsNotAnObjectIsRejected() throws {
        let contents = ManifestDecoder.decode("- a\n- b\n---\nkind: Node\nmetadata: {name: n1}\n")
        #expect(contents.ids == ["Node n1"])
        #expect(contents.rejected.count == 1)
    }

    @Test func badItemInAListDoesNotSpoilTheOthers() throws {
        let text = """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: Service
              metadata: {name: good}
              spec: {clusterIP: 10.96.0.5, ports: [{port: 53, protocol: UDP}]}
            - apiVersion: v1
              kind: Service
              metadata: {name: bad}
              spec:
                clusterIP: 10.96.0.6
                ports:
                - port: 70000
            - apiVersion: v1
              kind: Node
              metadata: {name: node-a}
            """
        let contents = ManifestDecoder.decode(text)
        #expect(contents.ids == ["Service default/good", "Node node-a"])
        let problem = try #require(contents.rejected.first?.problem)
        #expect(problem.field == "spec.ports[0].port")
        #expect(problem.line == line(of: "- port: 70000", in: text))
    }
}
