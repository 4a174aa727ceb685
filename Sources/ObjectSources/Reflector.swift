import Foundation
import KubeObjects
import Logging
import NIOCore

/// What to list and watch for one kind: where, and with which server-side filters.
struct ResourceSpec: Sendable {
    enum Location: Sendable {
        case fixed(String)
        /// EndpointSlices: `discovery.k8s.io/v1` when the server serves it, else `v1beta1` (Kubernetes
        /// 1.17–1.20); asked again before every list, so a cluster upgrade mid-run is followed.
        case endpointSlices(forced: EndpointSliceAPIVersion?)
    }

    var kind: ObjectKind
    var location: Location
    var labelSelector: String?
    var fieldSelector: String?

    var selectors: [(String, String)] {
        var q: [(String, String)] = []
        if let labelSelector { q.append(("labelSelector", labelSelector)) }
        if let fieldSelector { q.append(("fieldSelector", fieldSelector)) }
        return q
    }
}

/// List + watch of one kind, with kube-proxy's (client-go's reflector's) semantics:
/// list, then watch from the list's resourceVersion with bookmarks; resume from the last seen
/// resourceVersion after a dropped connection or a server-side timeout; list again after
/// `410 Gone`/`Expired` and report only the difference to what was reported before.
/// The reflector's `store` holds the fingerprint of exactly what its events have told the consumer
/// so far (the consumer keeps what it needs of the objects themselves).
actor Reflector {
    let spec: ResourceSpec
    private let client: KubeAPIClient
    private let options: KubeAPISourceOptions
    private let logger: Logger
    private let stats: StatisticsBox
    private var backoff: Backoff

    private(set) var store: [ObjectID: Int] = [:]
    private(set) var resourceVersion = ""
    private var path = ""
    /// When the current watch got its 200, and how many events it delivered: a watch that worked
    /// for a while before it dropped starts the backoff afresh.
    private var watchEstablished: ContinuousClock.Instant?
    private var watchEvents = 0

    init(spec: ResourceSpec, client: KubeAPIClient, options: KubeAPISourceOptions, logger: Logger, stats: StatisticsBox) {
        self.spec = spec
        self.client = client
        self.options = options
        var logger = logger
        logger[metadataKey: "kind"] = "\(spec.kind.rawValue)"
        self.logger = logger
        self.stats = stats
        self.backoff = Backoff(options.backoff)
    }

    // MARK: list

    /// Lists until it succeeds (waiting with backoff between attempts); nil when cancelled.
    func listUntilSuccess() async -> [ObjectEvent]? {
        while !Task.isCancelled {
            do {
                let events = try await list()
                backoff.reset()
                return events
            } catch {
                if Task.isCancelled { return nil }
                let wait = backoff.next()
                logger.warning("cannot list; retrying", metadata: ["error": "\(error)", "in": "\(wait)"])
                stats.update { $0.errors += 1 }
                guard (try? await Task.sleep(for: wait)) != nil else { return nil }
            }
        }
        return nil
    }

    /// One complete (paginated) list; returns the events that take the consumer from `store` to it.
    func list() async throws -> [ObjectEvent] {
        path = try await resolvePath()
        var items: [APIItem] = []
        var continueToken: String?
        var listVersion = ""
        while true {
            var query = spec.selectors + [("limit", "\(options.pageSize)")]
            if let token = continueToken { query.append(("continue", token)) }
            let (status, body) = try await client.get(path: path, query: query)
            guard status == .ok else {
                let error = KubeAPIError.from(status: status, body: body)
                if case .expired = error, continueToken != nil {
                    // The continue token outlived the compaction window: start the list over.
                    logger.info("list continuation expired; listing from the start")
                    items = []
                    continueToken = nil
                    continue
                }
                throw error
            }
            let page = try APIList.decode(body, kind: spec.kind)
            items += page.items ?? []
            listVersion = page.metadata?.resourceVersion ?? ""
            guard let next = page.metadata?.continue, !next.isEmpty else { break }
            continueToken = next
        }

        var next: [ObjectID: Int] = [:]
        var events: [ObjectEvent] = []
        for item in items {
            switch item.content {
            case .object(let object):
                let fingerprint = object.fingerprint
                next[object.id] = fingerprint
                if store[object.id] != fingerprint { events.append(.upsert(object)) }
            case .rejected(let reason):
                skip(item, reason: reason)
                // Keep what the consumer has rather than withdrawing a working service over a bad update.
                if let id = item.id, let kept = store[id] { next[id] = kept }
            }
        }
        events.sort { $0.id < $1.id }
        for id in store.keys.sorted() where next[id] == nil { events.append(.delete(id)) }
        store = next
        resourceVersion = listVersion
        stats.update {
            $0.lists += 1
            if spec.kind == .endpointSlice { $0.endpointSliceAPIVersion = path.split(separator: "/")[1...2].joined(separator: "/") }
        }
        logger.debug("listed", metadata: ["objects": "\(next.count)", "resourceVersion": "\(listVersion)",
                                          "changes": "\(events.count)"])
        return events
    }

    private func resolvePath() async throws -> String {
        switch spec.location {
        case .fixed(let p): return p
        case .endpointSlices(let forced?): return "/apis/discovery.k8s.io/\(forced.rawValue)/endpointslices"
        case .endpointSlices(nil):
            let (status, body) = try await client.get(path: "/apis/discovery.k8s.io", timeout: .seconds(30))
            if status == .notFound {
                throw KubeAPIError.http(status, "the server serves no discovery.k8s.io EndpointSlices (Kubernetes older than 1.17)")
            }
            guard status == .ok else { throw KubeAPIError.from(status: status, body: body) }
            struct APIGroup: Decodable { struct Version: Decodable { var version: String }; var versions: [Version] }
            guard let group = try? JSONDecoder().decode(APIGroup.self, from: body) else {
                throw KubeAPIError.decoding("discovery of discovery.k8s.io: \(String(buffer: body).prefix(200))")
            }
            let served = Set(group.versions.map(\.version))
            for candidate in [EndpointSliceAPIVersion.v1, .v1beta1] where served.contains(candidate.rawValue) {
                if path.isEmpty || !path.contains("/\(candidate.rawValue)/") {
                    logger.info("using EndpointSlices \(candidate.apiVersion)", metadata: ["served": "\(served.sorted())"])
                }
                return "/apis/discovery.k8s.io/\(candidate.rawValue)/endpointslices"
            }
            throw KubeAPIError.http(.notFound, "discovery.k8s.io serves neither v1 nor v1beta1 (serves \(served.sorted()))")
        }
    }

    // MARK: watch

    /// Watches until cancelled, relisting whenever the server says the resourceVersion expired.
    func run(emit: @Sendable ([ObjectEvent]) -> Void) async {
        while !Task.isCancelled {
            do {
                let started = ContinuousClock.now
                let seen = try await watchOnce(emit: emit)
                // The server ended the watch (its timeout): resume at once from the last resourceVersion.
                // A watch that ends immediately without news is treated as a failure, so a misbehaving
                // server cannot make us spin.
                if seen > 0 || ContinuousClock.now - started > .seconds(1) {
                    backoff.reset()
                } else {
                    try await Task.sleep(for: backoff.next())
                }
            } catch KubeAPIError.expired(let message) {
                logger.info("resourceVersion expired; listing again",
                            metadata: ["resourceVersion": "\(resourceVersion)", "server": "\(message)"])
                stats.update { $0.expired += 1 }
                guard await relist(emit: emit) else { return }
            } catch {
                if Task.isCancelled || error is CancellationError { return }
                if let established = watchEstablished,
                   watchEvents > 0 || ContinuousClock.now - established > .seconds(10) {
                    backoff.reset()
                }
                watchEstablished = nil
                let wait = backoff.next()
                stats.update { $0.errors += 1 }
                if case KubeAPIError.http(let status, _) = error {
                    // Refused (403, 404 after an upgrade dropped v1beta1, 5xx…): back off and list afresh.
                    logger.warning("watch refused; listing again", metadata: ["status": "\(status.code)", "error": "\(error)", "in": "\(wait)"])
                    guard (try? await Task.sleep(for: wait)) != nil else { return }
                    guard await relist(emit: emit) else { return }
                } else {
                    logger.warning("watch failed; resuming from the last resourceVersion",
                                   metadata: ["error": "\(error)", "resourceVersion": "\(resourceVersion)", "in": "\(wait)"])
                    guard (try? await Task.sleep(for: wait)) != nil else { return }
                }
            }
        }
    }

    private func relist(emit: @Sendable ([ObjectEvent]) -> Void) async -> Bool {
        guard let events = await listUntilSuccess() else { return false }
        stats.update { $0.relists += 1 }
        if !events.isEmpty { emit(events) }
        return true
    }

    /// One watch request. Returns the number of events seen when the server ends it normally.
    private func watchOnce(emit: @Sendable ([ObjectEvent]) -> Void) async throws -> Int {
        let timeout = Int.random(in: options.watchTimeoutSeconds)
        let query = spec.selectors + [
            ("watch", "1"), ("resourceVersion", resourceVersion), ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", "\(timeout)"),
        ]
        stats.update { $0.watches += 1 }
        watchEstablished = nil
        watchEvents = 0
        let response = try await client.stream(path: path, query: query, deadline: .now() + .seconds(Int64(timeout) + 30))
        guard response.status == .ok else {
            let body = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
            throw KubeAPIError.from(status: response.status, body: body)
        }
        watchEstablished = .now
        var decoder = WatchStreamDecoder(kind: spec.kind)
        for try await chunk in response.body {
            watchEvents += try apply(decoder.feed(chunk), emit: emit)
        }
        watchEvents += try apply(decoder.finish(), emit: emit)
        return watchEvents
    }

    /// Applies decoded watch events to the store and emits the resulting changes as one batch.
    /// An ERROR event ends the watch (after emitting what came before it).
    private func apply(_ results: [Result<WatchEvent, KubeAPIError>], emit: @Sendable ([ObjectEvent]) -> Void) throws -> Int {
        var batch: [ObjectEvent] = []
        defer { if !batch.isEmpty { emit(batch) } }
        for result in results {
            let event: WatchEvent
            switch result {
            case .success(let e): event = e
            case .failure(let error):
                logger.error("undecodable watch event skipped", metadata: ["error": "\(error)"])
                stats.update { $0.skippedObjects += 1 }
                continue
            }
            let item = event.object
            switch event.type {
            case .added, .modified:
                if let rv = item.resourceVersion { resourceVersion = rv }
                switch item.content {
                case .object(let object):
                    let fingerprint = object.fingerprint
                    if store[object.id] != fingerprint {
                        store[object.id] = fingerprint
                        batch.append(.upsert(object))
                    }
                case .rejected(let reason):
                    skip(item, reason: reason)
                }
            case .deleted:
                if let rv = item.resourceVersion { resourceVersion = rv }
                if let id = item.id, store.removeValue(forKey: id) != nil { batch.append(.delete(id)) }
            case .bookmark:
                if let rv = item.resourceVersion { resourceVersion = rv }
                stats.update { $0.bookmarks += 1 }
            case .error:
                let status = item.status
                if status?.code == 410 || status?.reason == "Expired" || status?.reason == "Gone" {
                    throw KubeAPIError.expired(status?.description ?? "410")
                }
                throw KubeAPIError.http(.init(statusCode: status?.code ?? 500), status?.description ?? "watch error")
            }
        }
        return results.count
    }

    private func skip(_ item: APIItem, reason: String) {
        let name = item.id.map { "\($0)" } ?? "\(spec.kind.rawValue) (unnamed)"
        logger.error("bad object from the API skipped", metadata: ["object": "\(name)", "problem": "\(reason)"])
        stats.update { $0.skippedObjects += 1 }
    }
}
