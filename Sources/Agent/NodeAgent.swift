import Controller
import KubeObjects
import Logging
import ServiceLifecycle
import ServiceTable

/// The node agent: the pipeline sources → controller → data planes, run until SIGTERM/SIGINT.
///
/// It waits for the source's complete initial state before the first sync (as kube-proxy waits for
/// its informers), so a restarted agent never programs a half-empty table over the rules the
/// previous one left. On shutdown it stops watching and leaves the rules in place: traffic keeps
/// flowing while the agent restarts (`kproxy cleanup` removes them).
public final class NodeAgent: Sendable {
    public struct Configuration: Sendable {
        public var nodeName: String
        public var mode: String
        public var schedule: SyncSchedule
        /// The health and metrics servers; nil runs none (tests, one-shot tools).
        public var servers: ServerAddresses?

        public init(nodeName: String, mode: String, schedule: SyncSchedule, servers: ServerAddresses? = nil) {
            self.nodeName = nodeName
            self.mode = mode
            self.schedule = schedule
            self.servers = servers
        }
    }

    public let controller: ProxyController
    public let runner: SyncRunner
    public let metrics: ProxyMetrics
    private let configuration: Configuration
    private let source: @Sendable () -> AsyncStream<[ObjectEvent]>
    private let logger: Logger

    /// - Parameter source: called once; its first element must be the complete initial state.
    public init(configuration: Configuration, dataPlanes: [any DataPlane],
                source: @escaping @Sendable () -> AsyncStream<[ObjectEvent]>, logger: Logger) {
        let metrics = ProxyMetrics(mode: configuration.mode)
        // Health-check node ports follow the table like a data plane (only with the servers on).
        let planes = dataPlanes + (configuration.servers == nil ? [] : [HealthCheckNodePorts(logger: logger)])
        let controller = ProxyController(nodeName: configuration.nodeName, dataPlanes: planes, observer: metrics,
                                         logger: logger)
        self.controller = controller
        self.metrics = metrics
        self.configuration = configuration
        self.runner = SyncRunner(schedule: configuration.schedule) { kind in
            let clock = ContinuousClock()
            let start = clock.now
            let report = try await controller.sync(kind)
            // A big sync (the first, a relist, a periodic full sync) leaves its garbage in malloc's arenas.
            if kind == .full || report.changes >= 1_000 { ProcessMemory.returnFreedMemory() }
            guard logger.logLevel <= .debug else { return }
            var metadata: Logger.Metadata = [
                "kind": "\(kind)", "servicePorts": "\(report.servicePorts)", "tableVersion": "\(report.tableVersion)",
                "changes": "\(report.changes)", "duration": "\(Self.ms(clock.now - start))",
                "build": "\(Self.ms(report.build))", "metrics": "\(Self.ms(report.observer))",
            ]
            for (mode, d) in report.dataPlanes { metadata[mode] = "\(Self.ms(d))" }
            logger.debug("synced", metadata: metadata)
        }
        self.source = source
        self.logger = logger
    }

    static func ms(_ d: Duration) -> String {
        let (s, a) = d.components
        return String(format: "%.3fms", Double(s) * 1e3 + Double(a) / 1e15)
    }

    /// Runs until a termination signal (or the task is cancelled).
    public func run() async throws {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: Pipeline(agent: self), successTerminationBehavior: .gracefullyShutdownGroup),
        ]
        if let servers = configuration.servers {
            if !servers.healthz.isEmpty {
                services.append(.init(service: try AgentServers.health(
                    controller: controller, metrics: metrics, timeout: servers.healthTimeout,
                    address: servers.healthz, logger: logger)))
            }
            if !servers.metrics.isEmpty {
                services.append(.init(service: try AgentServers.metrics(
                    controller: controller, metrics: metrics, mode: configuration.mode,
                    nodeName: configuration.nodeName, timeout: servers.healthTimeout,
                    address: servers.metrics, logger: logger)))
            }
        }
        let group = ServiceGroup(configuration: .init(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("stopped; rules left in place (kproxy cleanup removes them)")
    }

    fileprivate func pipeline() async {
        let stream = source()
        let (ready, readyContinuation) = AsyncStream<Void>.makeStream()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // The first sync waits for the source's complete initial state.
                for await _ in ready { break }
                if Task.isCancelled { return }
                await self.runner.run()
            }
            group.addTask {
                var first = true
                for await batch in stream {
                    let pending = await self.controller.ingest(batch)
                    if first {
                        first = false
                        self.logger.info("initial state received; starting syncs", metadata: ["objects": "\(batch.count)"])
                        readyContinuation.yield()
                    } else if pending {
                        await self.runner.requestSync()
                    }
                }
                readyContinuation.finish()
            }
            await group.next()
            group.cancelAll()
        }
    }

    private struct Pipeline: ServiceLifecycle.Service {
        let agent: NodeAgent
        func run() async throws {
            await cancelWhenGracefulShutdown { await agent.pipeline() }
        }
    }
}
