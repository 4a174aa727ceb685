import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL

/// A small GET-only client for the Kubernetes API on AsyncHTTPClient: TLS and auth from a
/// `KubeClientConfig`, JSON responses, streamed bodies for watches.
final class KubeAPIClient: Sendable {
    let config: KubeClientConfig
    private let http: HTTPClient
    private let logger: Logger

    init(config: KubeClientConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        let tls = try Self.tlsConfiguration(for: config)
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .disallow,
            // No read timeout: a quiet watch may send nothing for minutes. Each request has a deadline instead.
            timeout: .init(connect: .seconds(10), read: nil),
            decompression: .disabled)
        configuration.connectionPool = .init(idleTimeout: .seconds(60))
        // One HTTP/1.1 connection per watch: a dropped connection then affects one resource, and
        // Go's HTTP/2 server applies per-connection stream limits we do not need to reason about.
        configuration.httpVersion = .http1Only
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration,
                               backgroundActivityLogger: logger)
    }

    /// Trust (the config's CA, or the system's), verification and the client certificate.
    static func tlsConfiguration(for config: KubeClientConfig) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if config.insecureSkipTLSVerify {
            tls.certificateVerification = .none
        } else if let ca = config.certificateAuthorityPEM {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
            } catch {
                throw KubeConfigError.invalid("certificate authority", "not PEM certificates: \(error)")
            }
        }
        if let cert = config.credentials.clientCertificatePEM, let key = config.credentials.clientKeyPEM {
            do {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(cert).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
            } catch {
                throw KubeConfigError.invalid("client certificate", "unusable certificate or key: \(error)")
            }
        }
        return tls
    }

    func shutdown() async {
        try? await http.shutdown()
    }

    func request(path: String, query: [(String, String)]) throws -> HTTPClientRequest {
        var url = config.server + path
        if !query.isEmpty {
            url += "?" + query.map { "\(Self.escape($0.0))=\(Self.escape($0.1))" }.joined(separator: "&")
        }
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "kproxy")
        if let auth = try config.authorizationHeader() { request.headers.add(name: "Authorization", value: auth) }
        return request
    }

    /// GET returning the whole body (up to `limit` bytes).
    func get(path: String, query: [(String, String)] = [], timeout: TimeAmount = .seconds(60),
             limit: Int = 1 << 30) async throws -> (status: HTTPResponseStatus, body: ByteBuffer) {
        let response = try await http.execute(try request(path: path, query: query), timeout: timeout, logger: logger)
        let body = try await response.body.collect(upTo: limit)
        return (response.status, body)
    }

    /// GET whose body the caller streams (a watch). The deadline ends the request if the server
    /// never does, so a connection that silently died is noticed.
    func stream(path: String, query: [(String, String)], deadline: NIODeadline) async throws -> HTTPClientResponse {
        try await http.execute(try request(path: path, query: query), deadline: deadline, logger: logger)
    }

    private static let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)

    static func escape(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            if unreserved.contains(b) { out.unicodeScalars.append(Unicode.Scalar(b)) }
            else { out += String(format: "%%%02X", b) }
        }
        return out
    }
}

/// A `metav1.Status` as the API returns it for errors.
struct APIStatus: Decodable, Sendable, CustomStringConvertible {
    var kind: String?
    var status: String?
    var message: String?
    var reason: String?
    var code: Int?

    var description: String {
        [code.map(String.init), reason, message].compactMap { $0 }.joined(separator: " ")
    }

    static func from(_ body: ByteBuffer) -> APIStatus? {
        try? JSONDecoder().decode(APIStatus.self, from: body)
    }
}

/// Why a request to the API failed.
enum KubeAPIError: Error, CustomStringConvertible {
    /// 410 Gone / `Expired`: the resourceVersion is too old (compacted); list again.
    case expired(String)
    /// Any other unexpected HTTP answer.
    case http(HTTPResponseStatus, String)
    /// The server speaks, but not what we expected.
    case decoding(String)

    var description: String {
        switch self {
        case .expired(let m): return "resource version expired: \(m)"
        case let .http(status, m): return "HTTP \(status.code) \(status.reasonPhrase)\(m.isEmpty ? "" : ": \(m)")"
        case .decoding(let m): return "unexpected answer: \(m)"
        }
    }

    static func from(status: HTTPResponseStatus, body: ByteBuffer) -> KubeAPIError {
        let s = APIStatus.from(body)
        var message = s?.message ?? s?.reason ?? String(buffer: body).prefix(200).description
        if message == status.reasonPhrase { message = "" }
        if status.code == 410 || s?.reason == "Expired" || s?.reason == "Gone" { return .expired(message) }
        return .http(status, message)
    }
}
