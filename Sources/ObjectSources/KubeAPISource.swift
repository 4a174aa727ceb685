import Foundation
import KubeObjects
import Logging
import NIOSSL

/// Which EndpointSlice API to read.
public enum EndpointSliceAPIVersion: String, Sendable, CaseIterable {
    case v1
    /// Kubernetes 1.17–1.20 (and later, until 1.25): `topology` instead of `nodeName`/`zone`.
    case v1beta1

    public var apiVersion: String { "discovery.k8s.io/\(rawValue)" }
}

public struct KubeAPISourceOptions: Sendable {
    /// This node's name: its Node object is watched (by `metadata.name`) for topology labels.
    /// nil: no Node is watched.
    public var nodeName: String?
    /// Each watch asks the server to end it after a random time in this range (client-go: 5–10 min),
    /// so watches on many nodes do not all reconnect at once.
    public var watchTimeoutSeconds: ClosedRange<Int>
    /// Waits between failed attempts.
    public var backoff: BackoffPolicy
    /// Objects per list page.
    public var pageSize: Int
    /// nil: ask the server (discovery) and prefer v1.
    public var endpointSliceVersion: EndpointSliceAPIVersion?

    public init(nodeName: String? = nil, watchTimeoutSeconds: ClosedRange<Int> = 300...600,
                backoff: BackoffPolicy = BackoffPolicy(), pageSize: Int = 500,
                endpointSliceVersion: EndpointSliceAPIVersion? = nil) {
        self.nodeName = nodeName
        self.watchTimeoutSeconds = watchTimeoutSeconds
        self.backoff = backoff
        self.pageSize = max(1, pageSize)
        self.endpointSliceVersion = endpointSliceVersion
    }
}

/// Counters describing what the source has done; for logs, metrics and tests.
public struct KubeAPISourceStatistics: Sendable, Equatable {
    /// Successful lists (the initial ones and relists).
    public var lists = 0
    /// Lists after the first one of a kind (after `410 Gone`, or a refused watch).
    public var relists = 0
    /// Watch requests made.
    public var watches = 0
    /// Watches the server ended with `410 Gone`/`Expired`.
    public var expired = 0
    /// Failed requests and dropped watches.
    public var errors = 0
    public var bookmarks = 0
    /// Objects from the API that could not be used (logged and skipped).
    public var skippedObjects = 0
    /// `discovery.k8s.io/v1` or `discovery.k8s.io/v1beta1`, once known.
    public var endpointSliceAPIVersion: String?
}

final class StatisticsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value = KubeAPISourceStatistics()
    func update(_ body: (inout KubeAPISourceStatistics) -> Void) { lock.withLock { body(&value) } }
    var current: KubeAPISourceStatistics { lock.withLock { value } }
}

/// Services, EndpointSlices and this node's Node from a Kubernetes API server, as kube-proxy reads them.
///
/// Filters are the server-side ones kube-proxy uses: Services and EndpointSlices without the
/// `service.kubernetes.io/service-proxy-name` label (another proxy owns those) and without
/// `service.kubernetes.io/headless` (headless services need no proxying); the Node by
/// `metadata.name`. Each kind is listed, then watched from the list's resourceVersion with bookmarks;
/// see `Reflector` for the recovery rules. Objects the API sends that kproxy cannot use are logged
/// by name and skipped (a valid earlier version of the object stays in place).
public final class KubeAPISource: Sendable {
    public let config: KubeClientConfig
    public let options: KubeAPISourceOptions
    private let logger: Logger
    private let stats = StatisticsBox()

    /// Throws if the TLS material in `config` is unusable.
    public init(config: KubeClientConfig, options: KubeAPISourceOptions = KubeAPISourceOptions(),
                logger: Logger = Logger(label: "kproxy.source.api")) throws {
        _ = try KubeAPIClient.tlsConfiguration(for: config)
        self.config = config
        self.options = options
        self.logger = logger
    }

    public var statistics: KubeAPISourceStatistics { stats.current }

    /// The label selector kube-proxy lists Services and EndpointSlices with.
    public static let serviceLabelSelector = "!\(WellKnownLabels.serviceProxyName),!\(WellKnownLabels.headless)"

    /// The API calls this source makes, as RBAC rules spell them (`group/resource/verb`): what the
    /// ClusterRole in deploy/ must grant, and no more.
    public static func requiredAccess(watchingNode: Bool = true) -> Set<String> {
        var kinds: [ObjectKind] = [.service, .endpointSlice]
        if watchingNode { kinds.append(.node) }
        var access = Set<String>()
        for kind in kinds {
            let rule = switch kind {
            case .service: "/services"
            case .endpointSlice: "discovery.k8s.io/endpointslices"
            case .node: "/nodes"
            }
            // Reflectors list, then watch; nothing is ever written.
            for verb in ["list", "watch"] { access.insert("\(rule)/\(verb)") }
        }
        return access
    }

    var resources: [ResourceSpec] {
        var specs = [
            ResourceSpec(kind: .service, location: .fixed("/api/v1/services"), labelSelector: Self.serviceLabelSelector),
            ResourceSpec(kind: .endpointSlice, location: .endpointSlices(forced: options.endpointSliceVersion),
                         labelSelector: Self.serviceLabelSelector),
        ]
        if let node = options.nodeName, !node.isEmpty {
            specs.append(ResourceSpec(kind: .node, location: .fixed("/api/v1/nodes"), fieldSelector: "metadata.name=\(node)"))
        }
        return specs
    }

    /// The first element is the complete state (after Services, EndpointSlices and the Node were all
    /// listed; it waits, retrying, until they can be), then batches of changes as they are watched.
    /// The stream ends when the consumer stops iterating.
    public func watch() -> AsyncStream<[ObjectEvent]> {
        let (stream, continuation) = AsyncStream<[ObjectEvent]>.makeStream(bufferingPolicy: .unbounded)
        let task = Task { [self] in
            await run(continuation: continuation)
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func run(continuation: AsyncStream<[ObjectEvent]>.Continuation) async {
        let client: KubeAPIClient
        do {
            client = try KubeAPIClient(config: config, logger: logger)
        } catch {
            logger.error("cannot set up the API client", metadata: ["error": "\(error)"])
            return
        }
        let reflectors = resources.map { Reflector(spec: $0, client: client, options: options, logger: logger, stats: stats) }
        var initial: [ObjectEvent] = []
        for reflector in reflectors {
            guard let events = await reflector.listUntilSuccess() else { break }
            initial += events
        }
        if !Task.isCancelled {
            logger.info("initial state listed", metadata: ["objects": "\(initial.count)", "server": "\(config.server)"])
            continuation.yield(initial)
            let emit: @Sendable ([ObjectEvent]) -> Void = { continuation.yield($0) }
            await withTaskGroup(of: Void.self) { group in
                for reflector in reflectors { group.addTask { await reflector.run(emit: emit) } }
            }
        }
        await client.shutdown()
    }
}
