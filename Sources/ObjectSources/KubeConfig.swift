import Foundation
import Yams

/// Where the API server is and how to authenticate to it: from a kubeconfig file or from the
/// service account a pod runs with (in-cluster).
public struct KubeClientConfig: Sendable, Equatable {
    /// `https://host:port`, without a trailing slash.
    public var server: String
    /// PEM certificates to trust for the server; nil means the system's trust store.
    public var certificateAuthorityPEM: [UInt8]?
    public var insecureSkipTLSVerify: Bool
    public var credentials: Credentials
    /// The context's namespace in a kubeconfig (kproxy watches every namespace; kept for completeness).
    public var namespace: String?

    public struct Credentials: Sendable, Equatable {
        /// A fixed bearer token.
        public var bearerToken: String?
        /// A file holding the bearer token, read again for every request (service account tokens rotate).
        public var bearerTokenFile: String?
        /// A TLS client certificate (chain) and its key, PEM.
        public var clientCertificatePEM: [UInt8]?
        public var clientKeyPEM: [UInt8]?
        /// HTTP basic auth (old clusters only).
        public var username: String?
        public var password: String?

        public init(bearerToken: String? = nil, bearerTokenFile: String? = nil,
                    clientCertificatePEM: [UInt8]? = nil, clientKeyPEM: [UInt8]? = nil,
                    username: String? = nil, password: String? = nil) {
            self.bearerToken = bearerToken
            self.bearerTokenFile = bearerTokenFile
            self.clientCertificatePEM = clientCertificatePEM
            self.clientKeyPEM = clientKeyPEM
            self.username = username
            self.password = password
        }
    }

    public init(server: String, certificateAuthorityPEM: [UInt8]? = nil, insecureSkipTLSVerify: Bool = false,
                credentials: Credentials = Credentials(), namespace: String? = nil) {
        var server = server
        while server.hasSuffix("/") { server.removeLast() }
        self.server = server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.credentials = credentials
        self.namespace = namespace
    }

    /// The value of the `Authorization` header for the next request, if any. Reads the token file
    /// each time, as client-go does (with its one-minute cache), so a rotated token is picked up.
    public func authorizationHeader() throws -> String? {
        if let file = credentials.bearerTokenFile {
            guard let data = FileManager.default.contents(atPath: file),
                  let token = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
                  !token.isEmpty
            else { throw KubeConfigError.unreadableFile(file, "bearer token file") }
            return "Bearer \(token)"
        }
        if let token = credentials.bearerToken, !token.isEmpty { return "Bearer \(token)" }
        if let user = credentials.username, let password = credentials.password {
            return "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
        }
        return nil
    }
}

public enum KubeConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadableFile(String, String)
    case invalid(String, String)
    case missing(String, String)
    case unsupported(String, String)
    case notInCluster(String)

    public var description: String {
        switch self {
        case let .unreadableFile(path, what): return "cannot read \(what) \(path)"
        case let .invalid(file, why): return "\(file): \(why)"
        case let .missing(file, what): return "\(file): \(what)"
        case let .unsupported(file, what): return "\(file): \(what) is not supported by kproxy"
        case let .notInCluster(why): return "not running in a cluster: \(why)"
        }
    }
}

// MARK: - In-cluster

extension KubeClientConfig {
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The pod's service account: `KUBERNETES_SERVICE_HOST`/`_PORT`, the CA and the (rotating) token file.
    public static func inCluster(environment: [String: String] = ProcessInfo.processInfo.environment,
                                 serviceAccountDirectory: String = serviceAccountDirectory) throws -> KubeClientConfig {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
              let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty
        else { throw KubeConfigError.notInCluster("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set") }
        let tokenFile = serviceAccountDirectory + "/token"
        guard FileManager.default.isReadableFile(atPath: tokenFile) else {
            throw KubeConfigError.notInCluster("no service account token at \(tokenFile)")
        }
        let caFile = serviceAccountDirectory + "/ca.crt"
        guard let ca = FileManager.default.contents(atPath: caFile) else {
            throw KubeConfigError.unreadableFile(caFile, "service account CA")
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host   // IPv6
        let namespace = (try? String(contentsOfFile: serviceAccountDirectory + "/namespace", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return KubeClientConfig(server: "https://\(hostPart):\(port)", certificateAuthorityPEM: Array(ca),
                                credentials: Credentials(bearerTokenFile: tokenFile), namespace: namespace)
    }
}

// MARK: - kubeconfig

extension KubeClientConfig {
    /// Reads a kubeconfig file and returns the config of `context` (default: its `current-context`).
    /// Relative file paths in it are relative to the file's folder, as in kubectl.
    public static func kubeconfig(file path: String, context: String? = nil) throws -> KubeClientConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KubeConfigError.unreadableFile(path, "kubeconfig")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw KubeConfigError.invalid(path, "not UTF-8 text")
        }
        let base = (path as NSString).deletingLastPathComponent
        return try kubeconfig(text: text, file: path, baseDirectory: base.isEmpty ? "." : base, context: context)
    }

    /// Parses kubeconfig text (YAML or JSON).
    public static func kubeconfig(text: String, file: String = "kubeconfig", baseDirectory: String = ".",
                                  context wanted: String? = nil) throws -> KubeClientConfig {
        let doc: KubeconfigFile
        do {
            doc = try YAMLDecoder().decode(KubeconfigFile.self, from: text)
        } catch {
            throw KubeConfigError.invalid(file, "not a kubeconfig: \(error)")
        }
        guard let contextName = wanted ?? doc.currentContext, !contextName.isEmpty else {
            throw KubeConfigError.missing(file, "no current-context (and no context chosen)")
        }
        guard let context = doc.contexts?.first(where: { $0.name == contextName })?.context else {
            throw KubeConfigError.missing(file, "context \"\(contextName)\" not found")
        }
        guard let clusterName = context.cluster,
              let cluster = doc.clusters?.first(where: { $0.name == clusterName })?.cluster
        else { throw KubeConfigError.missing(file, "cluster \"\(context.cluster ?? "")\" of context \"\(contextName)\" not found") }
        guard let server = cluster.server, !server.isEmpty else {
            throw KubeConfigError.missing(file, "cluster \"\(clusterName)\" has no server")
        }
        if cluster.proxyURL != nil { throw KubeConfigError.unsupported(file, "cluster proxy-url") }

        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : baseDirectory + "/" + p }
        func read(_ p: String, _ what: String) throws -> [UInt8] {
            guard let d = FileManager.default.contents(atPath: resolve(p)) else {
                throw KubeConfigError.unreadableFile(resolve(p), what)
            }
            return Array(d)
        }
        func decode(_ b64: String, _ what: String) throws -> [UInt8] {
            let cleaned = b64.filter { !$0.isWhitespace }
            guard let d = Data(base64Encoded: cleaned) else { throw KubeConfigError.invalid(file, "\(what) is not base64") }
            return Array(d)
        }

        var ca: [UInt8]?
        if let data = cluster.certificateAuthorityData, !data.isEmpty {
            ca = try decode(data, "certificate-authority-data")
        } else if let path = cluster.certificateAuthority, !path.isEmpty {
            ca = try read(path, "certificate-authority")
        }

        var creds = Credentials()
        if let userName = context.user, !userName.isEmpty {
            guard let user = doc.users?.first(where: { $0.name == userName })?.user else {
                throw KubeConfigError.missing(file, "user \"\(userName)\" of context \"\(contextName)\" not found")
            }
            if user.exec != nil { throw KubeConfigError.unsupported(file, "user \"\(userName)\": exec credential plugins") }
            if user.authProvider != nil { throw KubeConfigError.unsupported(file, "user \"\(userName)\": auth-provider") }
            if let t = user.token, !t.isEmpty { creds.bearerToken = t }
            else if let f = user.tokenFile, !f.isEmpty { creds.bearerTokenFile = resolve(f) }
            if let d = user.clientCertificateData, !d.isEmpty {
                creds.clientCertificatePEM = try decode(d, "client-certificate-data")
            } else if let p = user.clientCertificate, !p.isEmpty {
                creds.clientCertificatePEM = try read(p, "client-certificate")
            }
            if let d = user.clientKeyData, !d.isEmpty {
                creds.clientKeyPEM = try decode(d, "client-key-data")
            } else if let p = user.clientKey, !p.isEmpty {
                creds.clientKeyPEM = try read(p, "client-key")
            }
            if (creds.clientCertificatePEM == nil) != (creds.clientKeyPEM == nil) {
                throw KubeConfigError.missing(file, "user \"\(userName)\" has a client certificate without a key, or a key without a certificate")
            }
            creds.username = user.username
            creds.password = user.password
        }
        return KubeClientConfig(server: server, certificateAuthorityPEM: ca,
                                insecureSkipTLSVerify: cluster.insecureSkipTLSVerify ?? false,
                                credentials: creds, namespace: context.namespace)
    }
}

/// The parts of a kubeconfig file kproxy reads.
struct KubeconfigFile: Decodable {
    struct NamedCluster: Decodable { var name: String; var cluster: Cluster? }
    struct NamedUser: Decodable { var name: String; var user: User? }
    struct NamedContext: Decodable { var name: String; var context: Context? }

    struct Cluster: Decodable {
        var server: String?
        var certificateAuthority: String?
        var certificateAuthorityData: String?
        var insecureSkipTLSVerify: Bool?
        var proxyURL: String?
        enum CodingKeys: String, CodingKey {
            case server
            case certificateAuthority = "certificate-authority"
            case certificateAuthorityData = "certificate-authority-data"
            case insecureSkipTLSVerify = "insecure-skip-tls-verify"
            case proxyURL = "proxy-url"
        }
    }

    struct User: Decodable {
        var token: String?
        var tokenFile: String?
        var clientCertificate: String?
        var clientCertificateData: String?
        var clientKey: String?
        var clientKeyData: String?
        var username: String?
        var password: String?
        var exec: Ignored?
        var authProvider: Ignored?
        enum CodingKeys: String, CodingKey {
            case token, tokenFile, username, password, exec
            case clientCertificate = "client-certificate"
            case clientCertificateData = "client-certificate-data"
            case clientKey = "client-key"
            case clientKeyData = "client-key-data"
            case authProvider = "auth-provider"
        }
    }

    struct Context: Decodable {
        var cluster: String?
        var user: String?
        var namespace: String?
    }

    /// Present or not; the content is not read.
    struct Ignored: Decodable {
        init(from decoder: Decoder) throws {}
    }

    var clusters: [NamedCluster]?
    var users: [NamedUser]?
    var contexts: [NamedContext]?
    var currentContext: String?

    enum CodingKeys: String, CodingKey {
        case clusters, users, contexts
        case currentContext = "current-context"
    }
}
