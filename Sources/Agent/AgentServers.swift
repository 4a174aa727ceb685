import Controller
import Foundation
import Hummingbird
import Logging
import ServiceTable
import Yams

/// Where the agent's HTTP endpoints listen, as kube-proxy's `--healthz-bind-address` and
/// `--metrics-bind-address` (`host:port`; an empty string turns a server off).
public struct ServerAddresses: Sendable {
    public var healthz: String
    public var metrics: String
    /// kube-proxy's rule: unhealthy when a queued change waited longer than this (2 × sync period).
    public var healthTimeout: TimeInterval

    public init(healthz: String = "0.0.0.0:10256", metrics: String = "127.0.0.1:10249", healthTimeout: TimeInterval = 60) {
        self.healthz = healthz
        self.metrics = metrics
        self.healthTimeout = healthTimeout
    }

    public static func split(_ address: String) throws -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw AgentError.invalidAddress(address)
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }
}

public enum AgentError: Error, CustomStringConvertible {
    case invalidAddress(String)
    public var description: String {
        switch self {
        case .invalidAddress(let a): return "\"\(a)\" is not host:port"
        }
    }
}

/// Builds the agent's HTTP applications: health (`/healthz`, `/livez`) and metrics/debug
/// (`/metrics`, `/proxyMode`, `/debug/table`, `/debug/status`).
enum AgentServers {
    static func json(_ status: HTTPResponse.Status, _ object: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        let data = (try? encoder.encode(object)) ?? Data("{}".utf8)
        return Response(status: status,
                         headers: [.contentType: "application/json", .init("X-Content-Type-Options")!: "nosniff"],
                         body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func text(_ body: String, contentType: String = "text/plain; charset=utf-8") -> Response {
        Response(status: .ok, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    struct Health: Encodable {
        var lastUpdated: Date?
        var currentTime: Date
        var nodeEligible: Bool
    }

    static func health(controller: ProxyController, metrics: ProxyMetrics, timeout: TimeInterval,
                       address: String, logger: Logger) throws -> some ApplicationProtocol {
        let (host, port) = try ServerAddresses.split(address)
        let router = Router()
        let healthz = (ok: metrics.probeCounter("kubeproxy_proxy_healthz_total", code: 200),
                       bad: metrics.probeCounter("kubeproxy_proxy_healthz_total", code: 503))
        let livez = (ok: metrics.probeCounter("kubeproxy_proxy_livez_total", code: 200),
                     bad: metrics.probeCounter("kubeproxy_proxy_livez_total", code: 503))
        for (path, counters) in [("healthz", healthz), ("livez", livez)] {
            router.get(RouterPath(path)) { _, _ -> Response in
                let status = await controller.status
                let now = Date()
                let healthy = status.isHealthy(now: now, timeout: timeout)
                (healthy ? counters.ok : counters.bad).increment()
                return json(healthy ? .ok : .serviceUnavailable,
                            Health(lastUpdated: status.lastSuccess, currentTime: now, nodeEligible: true))
            }
        }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: nil),
                           logger: logger)
    }

    struct StatusDocument: Encodable {
        var mode: String
        var node: String
        var healthy: Bool
        var sync: SyncStatus
    }

    static func metrics(controller: ProxyController, metrics: ProxyMetrics, mode: String, nodeName: String,
                        timeout: TimeInterval, address: String, logger: Logger) throws -> some ApplicationProtocol {
        let (host, port) = try ServerAddresses.split(address)
        let router = Router()
        router.get("metrics") { _, _ in text(metrics.render(), contentType: "text/plain; version=0.0.4; charset=utf-8") }
        router.get("proxyMode") { _, _ in text(mode) }
        router.get("debug/table") { request, _ -> Response in
            let table = await controller.table
            switch request.uri.queryParameters["output"].map(String.init) {
            case "json": return json(.ok, TableDocument(table))
            case "yaml": return text((try? YAMLEncoder().encode(TableDocument(table))) ?? "", contentType: "application/yaml")
            case "wide": return text(TableText.render(table, wide: true))
            default: return text(TableText.render(table))
            }
        }
        router.get("debug/status") { _, _ -> Response in
            let status = await controller.status
            return json(.ok, StatusDocument(mode: mode, node: nodeName,
                                            healthy: status.isHealthy(now: Date(), timeout: timeout), sync: status))
        }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: nil),
                           logger: logger)
    }
}
