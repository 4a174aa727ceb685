import Foundation
import Hummingbird
import Logging
import NetworkTypes
import ServiceLifecycle
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
    private var servers: [UInt16: PortServer] = [:]
    /// Servers told to stop, until they have: a port given back and claimed again at once is
    /// served once the old server has let go of it (else the new one could not bind).
    private var stopping: [UInt16: Task<Void, Never>] = [:]

    /// One port's HTTP server. It is stopped by a graceful shutdown of its own service group,
    /// never by cancelling it: a probe arriving while a cancelled server winds down crashes
    /// HummingbirdCore ("Deinited NIOAsyncWriter without calling finish()").
    private struct PortServer {
        var group: ServiceGroup
        var task: Task<Void, Never>

        func stop() -> Task<Void, Never> {
            let (group, task) = (group, task)
            return Task {
                await group.triggerGracefulShutdown()
                await task.value
            }
        }
    }
    /// Per health-check port, each service port that names it and its own count; touched only by
    /// `apply`, which the controller never runs twice at once.
    private var entries: [UInt16: [ServicePortName: ServiceHealth]] = [:]

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
        // Follow the diff (a sync that changes one service costs one service's work), or the
        // whole table on a full sync.
        var touchedPorts = Set<UInt16>()
        func add(_ entry: ServicePortEntry) {
            guard let port = entry.healthCheckNodePort else { return }
            // kube-proxy counts the service's local endpoints (by address) over its ports.
            entries[port, default: [:]][entry.name] = ServiceHealth(
                service: .init(namespace: entry.name.namespace, name: entry.name.name),
                localEndpoints: Set(entry.localEndpoints.map(\.ip)).count, serviceProxyHealthy: true)
            touchedPorts.insert(port)
        }
        if let changes = update.changedEntries {
            for (before, after) in changes {
                if let before, let port = before.healthCheckNodePort {
                    entries[port]?[before.name] = nil
                    if entries[port]?.isEmpty == true { entries[port] = nil }
                    touchedPorts.insert(port)
                }
                if let after { add(after) }
            }
        } else {
            touchedPorts = Set(entries.keys)
            entries.removeAll()
            for entry in update.current.entries.values { add(entry) }
        }
        var changes: [UInt16: ServiceHealth?] = [:]
        for port in touchedPorts {
            // The service ports naming one port are one service's (the API gives each service its
            // own); should two services claim it, the first by name answers.
            let claims = entries[port] ?? [:]
            let health = claims.min { $0.key < $1.key }.map { first in
                var h = first.value
                h.localEndpoints = claims.values.filter { $0.service == h.service }.map(\.localEndpoints).max() ?? 0
                return h
            }
            changes[port] = .some(health)
        }
        let toStart = lock.withLock { () -> [UInt16] in
            var start: [UInt16] = []
            for (port, health) in changes {
                services[port] = health
                if health != nil, servers[port] == nil { start.append(port) }
                if health == nil, let server = servers.removeValue(forKey: port) { stopping[port] = server.stop() }
            }
            return start
        }
        for port in toStart { start(port) }
    }

    public func cleanup() async throws {
        let all = lock.withLock { () -> [Task<Void, Never>] in
            defer { servers.removeAll(); stopping.removeAll() }
            return servers.values.map { $0.stop() } + Array(stopping.values)
        }
        for t in all { await t.value }
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
        let group = ServiceGroup(configuration: .init(services: [.init(service: app)], logger: logger))
        let previous = lock.withLock { stopping.removeValue(forKey: port) }
        let task = Task {
            await previous?.value
            do {
                try await group.run()
            } catch {
                logger.error("health check node port failed", metadata: ["port": "\(port)", "error": "\(error)"])
            }
        }
        lock.withLock { servers[port] = PortServer(group: group, task: task) }
        logger.info("health check node port serving", metadata: ["port": "\(port)"])
    }
}
