import Foundation
import Testing
@testable import ObjectSources

/// kubeconfig and in-cluster configuration: what kubectl would use is what kproxy uses.
struct KubeConfigTests {
    static let caPEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    static let certPEM = "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n"
    static let keyPEM = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n"
    static func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

    func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kproxy-kubeconfig-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static let twoContexts = """
    apiVersion: v1
    kind: Config
    current-context: prod
    clusters:
    - name: dev-cluster
      cluster:
        server: https://127.0.0.1:6443/
        insecure-skip-tls-verify: true
    - name: prod-cluster
      cluster:
        server: https://10.0.0.1:443
        certificate-authority-data: \(b64(caPEM))
    users:
    - name: dev-user
      user:
        token: dev-token
    - name: prod-user
      user:
        client-certificate-data: \(b64(certPEM))
        client-key-data: \(b64(keyPEM))
    contexts:
    - name: dev
      context: {cluster: dev-cluster, user: dev-user, namespace: team}
    - name: prod
      context: {cluster: prod-cluster, user: prod-user}
    """

    @Test func currentContextWithClientCertificateAndCAData() throws {
        let c = try KubeClientConfig.kubeconfig(text: Self.twoContexts)
        #expect(c.server == "https://10.0.0.1:443")
        #expect(c.certificateAuthorityPEM == Array(Self.caPEM.utf8))
        #expect(c.insecureSkipTLSVerify == false)
        #expect(c.credentials.clientCertificatePEM == Array(Self.certPEM.utf8))
        #expect(c.credentials.clientKeyPEM == Array(Self.keyPEM.utf8))
        #expect(c.credentials.bearerToken == nil)
        #expect(try c.authorizationHeader() == nil)
    }

    @Test func chosenContextWithTokenAndInsecureSkipVerify() throws {
        let c = try KubeClientConfig.kubeconfig(text: Self.twoContexts, context: "dev")
        #expect(c.server == "https://127.0.0.1:6443", "trailing slash dropped")
        #expect(c.insecureSkipTLSVerify)
        #expect(c.certificateAuthorityPEM == nil)
        #expect(c.namespace == "team")
        #expect(try c.authorizationHeader() == "Bearer dev-token")
    }

    @Test func filesAreRelativeToTheKubeconfig() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/pki", withIntermediateDirectories: true)
        try Self.caPEM.write(toFile: dir + "/pki/ca.crt", atomically: true, encoding: .utf8)
        try Self.certPEM.write(toFile: dir + "/pki/admin.crt", atomically: true, encoding: .utf8)
        try Self.keyPEM.write(toFile: dir + "/pki/admin.key", atomically: true, encoding: .utf8)
        try """
        clusters:
        - name: c
          cluster: {server: "https://k8s.example:6443", certificate-authority: pki/ca.crt}
        users:
        - name: u
          user: {client-certificate: pki/admin.crt, client-key: \(dir)/pki/admin.key}
        contexts:
        - name: x
          context: {cluster: c, user: u}
        current-context: x
        """.write(toFile: dir + "/config", atomically: true, encoding: .utf8)
        let c = try KubeClientConfig.kubeconfig(file: dir + "/config")
        #expect(c.certificateAuthorityPEM == Array(Self.caPEM.utf8))
        #expect(c.credentials.clientCertificatePEM == Array(Self.certPEM.utf8))
        #expect(c.credentials.clientKeyPEM == Array(Self.keyPEM.utf8))
    }

    @Test func tokenFileIsReadAgainForEachRequest() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "first\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        let c = try KubeClientConfig.kubeconfig(text: """
            clusters: [{name: c, cluster: {server: "https://h:1"}}]
            users: [{name: u, user: {tokenFile: token}}]
            contexts: [{name: x, context: {cluster: c, user: u}}]
            current-context: x
            """, baseDirectory: dir)
        #expect(try c.authorizationHeader() == "Bearer first")
        try "rotated".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        #expect(try c.authorizationHeader() == "Bearer rotated")
    }

    @Test func problemsAreNamed() throws {
        #expect(throws: KubeConfigError.missing("kubeconfig", "context \"nope\" not found")) {
            try KubeClientConfig.kubeconfig(text: Self.twoContexts, context: "nope")
        }
        #expect(throws: KubeConfigError.missing("kubeconfig", "no current-context (and no context chosen)")) {
            try KubeClientConfig.kubeconfig(text: "clusters: []\n")
        }
        #expect(throws: KubeConfigError.unsupported("kubeconfig", "user \"u\": exec credential plugins")) {
            try KubeClientConfig.kubeconfig(text: """
                clusters: [{name: c, cluster: {server: "https://h:1"}}]
                users: [{name: u, user: {exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}}}]
                contexts: [{name: x, context: {cluster: c, user: u}}]
                current-context: x
                """)
        }
        #expect(throws: KubeConfigError.unreadableFile("/nonexistent/kubeconfig", "kubeconfig")) {
            try KubeClientConfig.kubeconfig(file: "/nonexistent/kubeconfig")
        }
    }

    @Test func inClusterUsesTheServiceAccount() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.caPEM.write(toFile: dir + "/ca.crt", atomically: true, encoding: .utf8)
        try "sa-token".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        try "kube-system".write(toFile: dir + "/namespace", atomically: true, encoding: .utf8)
        let env = ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"]
        let c = try KubeClientConfig.inCluster(environment: env, serviceAccountDirectory: dir)
        #expect(c.server == "https://[fd00::1]:443")
        #expect(c.certificateAuthorityPEM == Array(Self.caPEM.utf8))
        #expect(c.credentials.bearerTokenFile == dir + "/token")
        #expect(c.namespace == "kube-system")
        #expect(try c.authorizationHeader() == "Bearer sa-token")

        #expect(throws: KubeConfigError.self) {
            try KubeClientConfig.inCluster(environment: [:], serviceAccountDirectory: dir)
        }
    }

    @Test func queryEscaping() {
        #expect(KubeAPIClient.escape("!service.kubernetes.io/service-proxy-name,!x") ==
                "%21service.kubernetes.io%2Fservice-proxy-name%2C%21x")
        #expect(KubeAPIClient.escape("metadata.name=node-a") == "metadata.name%3Dnode-a")
    }
}
