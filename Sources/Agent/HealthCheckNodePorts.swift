import Foundation
import Hummingbird
import Logging
import NetworkTypes
import ServiceTable

/// Health-check node ports for LoadBalancer services with `externalTrafficPolicy: Local`: an HTTP
/// server on each `healthCheckNodePort` answering 200 while this node has local endpoints for the
/// service and 503 otherwise, with kube-proxy's JSON body, so cloud load balancers only send traffic
/// to nodes that can serve it. It follows the service table like any data plane.
public final class HealthCheckNodePorts: DataPlane, @unchecked Sendable {
    public let mode = "healthcheck"
    private let logger: Logger
    private let bindHost: String
    private let lock = NSLock()
    private var services: [UInt16: ServiceHealth] = [:]
    private var servers: [UInt16: Task<Void, Never>] = [:]

    struct ServiceHealth: Encodable, Equatable {
        struct Name: Encodable, Equatable {
            var namespace: String
            var name: String
        }
        var service: Name
        var localEndpoints: Int
        var serviceProxyHealthy: Bool
    }

    public init(bindHost: String = "0.0.0.0", logger: Logger) {
        self.bindHost = bindHost
        self.logger = logger
    }

    public func apply(_ update: TableUpdate) async throws {
        var desired: [UInt16: ServiceHealth] = [:]
        for entry in update.current.entries.values {
            guard let port = entry.healthCheckNodePort else { continue }
            var health = desired[port] ?? ServiceHealth(
                service: .init(namespace: entry.name.namespace, name: entry.name.name),
                localEndpoints: 0, serviceProxyHealthy: true)
            // kube-proxy counts the service's local endpoints (by address) over its ports.
            health.localEndpoints = max(health.localEndpoints, Set(entry.localEndpoints.map(\.ip)).count)
            desired[port] = health
        }
        let (toStart, toStop) = lock.withLock { () -> ([UInt16], [Task<Void, Never>]) in
            services = desired
            let start = desired.keys.filter { servers[$0] == nil }
            let stopPorts = servers.keys.filter { desired[$0] == nil }
            let stop = stopPorts.compactMap { servers.removeValue(forKey: $0) }
            return (start, stop)
        }
        for task in toStop { task.cancel() }
        for port in toStart { start(port) }
    }

    public func cleanup() async throws {
        let all = lock.withLock { () -> [Task<Void, Never>] in
            defer { servers.removeAll() }
            return Array(servers.values)
        }
        for t in all { t.cancel() }
    }

    /// The current answer for a port: (HTTP status, body).
    func answer(_ port: UInt16) -> (HTTPResponse.Status, ServiceHealth?) {
        guard let h = lock.withLock({ services[port] }) else { return (.notFound, nil) }
        return (h.localEndpoints > 0 ? .ok : .serviceUnavailable, h)
    }

    private func start(_ port: UInt16) {
        let router = Router()
        router.get("**") { [weak self] _, _ -> Response in
            guard let self else { return Response(status: .serviceUnavailable) }
            let (status, health) = self.answer(port)
            var response = AgentServers.json(status, health)
            if let health {
                response.headers[.init("X-Load-Balancing-Endpoint-Weight")!] = String(health.localEndpoints)
            }
            return response
        }
        router.get("/") { [weak self] _, _ -> Response in
            guard let self else { return Response(status: .serviceUnavailable) }
            let (status, health) = self.answer(port)
            return AgentServers.json(status, health)
        }
        let app = Application(router: router,
                              configuration: .init(address: .hostname(bindHost, port: Int(port)), serverName: nil),
                              logger: logger)
        let logger = self.logger
        let task = Task {
            do {
                try await app.runService(gracefulShutdownSignals: [])
            } catch is CancellationError {
            } catch {
                logger.error("health check node port failed", metadata: ["port": "\(port)", "error": "\(error)"])
            }
        }
        lock.withLock { servers[port] = task }
        logger.info("health check node port serving", metadata: ["port": "\(port)"])
    }
}
