import Foundation
import NetworkTypes
import ServiceTable

/// What the last sync did, for logs, tests and benchmarks.
public struct NFTSyncStats: Sendable, Hashable {
    public enum Kind: String, Sendable { case full, incremental, unchanged }
    public var kind: Kind
    public var elementsAdded = 0
    public var elementsRemoved = 0
    public var chainsAdded = 0
    public var chainsRemoved = 0
    /// Size of the transaction sent to the kernel.
    public var bytes = 0
    /// Seconds spent building the transaction text, and inside libnftables (parse + kernel).
    public var renderSeconds = 0.0
    public var kernelSeconds = 0.0
    /// conntrack filters applied after the sync, and the entries they deleted.
    public var conntrackFilters = 0
    public var conntrackDeleted = 0
    /// Set when deleting conntrack entries failed (the sync itself succeeded).
    public var conntrackError: String?
    /// Why a full sync had to delete and recreate the tables instead of refilling them in place.
    public var replacedBecause: String?
    /// The kernel's refusal, when the sync failed (the previous ruleset is still in force).
    public var error: String?
    /// Why an incremental update was done as a full sync instead (it touched a key two service
    /// ports claim).
    public var fullBecause: String?
    /// Map keys two service ports both claimed (e.g. the same external IP and port in two
    /// Services, which the API allows): one of them was programmed.
    public var conflicts = 0
    /// Each contested destination with the service ports that claim it, e.g.
    /// `192.168.60.1 tcp 80: default/a:http, default/b:http` (full syncs with conflicts only).
    public var conflictClaimants: [String] = []
}

/// The nftables data plane: programs the kernel of the network namespace it runs in, in process
/// (libnftables for declarations and chains, nfnetlink for bulk element loads). It owns the
/// tables `ip kproxy` and `ip6 kproxy` and touches nothing else.
///
/// - Full sync: three transactions, each leaving a consistent ruleset: declare the tables and
///   refill every chain (libnftables); flush and refill every map in one nfnetlink batch (an
///   atomic swap of contents); delete chains nobody uses. It adopts whatever an earlier kproxy
///   left without a window where traffic is unhandled, and keeps session-affinity memory. If
///   that fails, the tables are replaced whole in one transaction.
/// - Incremental sync: one small libnftables transaction with the element- and chain-level
///   changes of the service ports in the diff; libnftables needs no cache of the big maps.
/// - A refused transaction changes nothing in the kernel; the error carries the kernel's message
///   and the next sync is a full one.
public final class NFTablesDataPlane: DataPlane, @unchecked Sendable {
    public let mode = "nftables"
    /// Element changes above which an incremental step loads them over nfnetlink.
    static let largeDelta = 500
    public let settings: ProxySettings
    public let families: [IPFamily]
    public let conntrackCleanup: Bool

    private let thread: NamespaceThread
    // Everything below is touched only on `thread`.
    private var context: NFTContext?
    private var state: RulesetState?
    private var appliedVersion: UInt64?
    private var stats = NFTSyncStats(kind: .unchanged) {
        didSet { observer?(stats) }
    }
    private let observer: (@Sendable (NFTSyncStats) -> Void)?

    /// - Parameters:
    ///   - netnsPath: program another network namespace (`/run/netns/NAME`); nil: this process's.
    ///   - conntrackCleanup: delete stale UDP conntrack entries after syncs.
    ///   - observer: called after every sync attempt with what it did (for logs and metrics);
    ///     runs on the data plane's thread, so it must not call back into the data plane.
    public init(settings: ProxySettings = ProxySettings(), families: [IPFamily] = IPFamily.allCases,
                netnsPath: String? = nil, conntrackCleanup: Bool = true,
                observer: (@Sendable (NFTSyncStats) -> Void)? = nil) throws {
        self.observer = observer
        self.settings = settings
        self.families = families
        self.conntrackCleanup = conntrackCleanup
        self.thread = try NamespaceThread(netnsPath: netnsPath)
        try thread.runBlocking { [self] in self.context = try NFTContext() }
    }

    deinit {
        // Free the libnftables context on its own thread (without waiting: deinit may run on
        // that very thread), then let the thread end once its queue is empty.
        let box = ContextBox(context)
        context = nil
        thread.submit { box.context = nil }
        thread.stop()
    }

    /// Statistics of the last successful or attempted sync.
    public var lastSyncStats: NFTSyncStats {
        get async { (try? await thread.run { [self] in self.stats }) ?? NFTSyncStats(kind: .unchanged) }
    }

    public func apply(_ update: TableUpdate) async throws {
        try await thread.run { [self] in try self.applyOnThread(update) }
    }

    public func cleanup() async throws {
        try await thread.run { [self] in try self.cleanupOnThread() }
    }

    /// Runs nft commands in the data plane's namespace (e.g. `list table ip kproxy`); JSON output with `json`.
    public func run(_ commands: String, json: Bool = false) async throws -> String {
        try await thread.run { [self] in
            let ctx = try self.requireContext()
            ctx.json = json
            defer { ctx.json = false }
            return try ctx.run(commands)
        }
    }

    // MARK: - On the namespace thread

    private func requireContext() throws -> NFTContext {
        guard let context else { throw NFTError(message: "data plane is shut down") }
        return context
    }

    private func applyOnThread(_ update: TableUpdate) throws {
        let ctx = try requireContext()
        let clock = ContinuousClock()
        let t0 = clock.now
        // The node's addresses shape some elements of every service (source ranges that hold the
        // node): when they change, only a full sync is right.
        if !update.isFullSync, let previous = update.previous, let diff = update.diff,
           state != nil, appliedVersion == previous.version, previous.node.addresses == update.current.node.addresses {
            var st = state!
            state = nil
            let names = diff.touched
            let delta = st.update(names: names, previous: previous, current: update.current, families: families)
            if delta.touches(st.conflicts) {
                // A key two ports claim: only a full sync knows which one is programmed.
                return try fullSync(update, ctx: ctx, clock: clock, t0: t0, because: "an element key claimed twice changed")
            }
            var s = NFTSyncStats(kind: delta.isEmpty ? .unchanged : .incremental)
            s.elementsAdded = delta.elements.added.count
            s.elementsRemoved = delta.elements.removed.count
            s.chainsAdded = delta.chains.added.count + delta.picks.added.count
            s.chainsRemoved = delta.chains.removed.count + delta.picks.removed.count
            if !delta.isEmpty {
                // Small steps: one libnftables transaction. Large ones (thousands of elements,
                // where libnftables' text parsing would dominate): split like a full sync, the
                // elements in one nfnetlink batch.
                let large = delta.elements.added.count + delta.elements.removed.count > Self.largeDelta
                var steps: [() throws -> Void] = []
                if large {
                    let before = NFTRuleset.incrementalChains(delta)
                    let batch = NFTRuleset.incrementalBatch(delta, firstSequence: nextSequence())
                    let after = NFTRuleset.incrementalCleanup(delta)
                    s.bytes = before.utf8.count + batch.bytes.count + after.utf8.count
                    if !before.isEmpty { steps.append { try ctx.run(before) } }
                    steps.append { try NFTNetlinkSocket.apply(batch) }
                    if !after.isEmpty { steps.append { try ctx.run(after) } }
                } else {
                    let text = NFTRuleset.incremental(delta)
                    s.bytes = text.utf8.count
                    steps.append { try ctx.run(text) }
                }
                let t1 = clock.now
                s.renderSeconds = seconds(t1 - t0)
                do {
                    for step in steps { try step() }
                } catch {
                    // The previous ruleset is in force (a step that ran before the refused one only
                    // added unused chains); the caller retries with a full sync.
                    s.error = "\(error)"
                    stats = s
                    throw error
                }
                s.kernelSeconds = seconds(clock.now - t1)
            }
            state = st
            appliedVersion = update.current.version
            cleanConntrack(ConntrackCleanup.filters(names: names, previous: previous, current: update.current),
                           stats: &s)
            stats = s
            return
        }

        try fullSync(update, ctx: ctx, clock: clock, t0: t0, because: nil)
    }

    /// Full sync, in three steps that each leave a consistent ruleset (see `NFTRuleset.FullSyncMode`).
    private func fullSync(_ update: TableUpdate, ctx: NFTContext, clock: ContinuousClock,
                          t0: ContinuousClock.Instant, because reason: String?) throws {
        state = nil
        appliedVersion = nil
        var elements = NFTElementGroups()
        let st = RulesetState(table: update.current, families: families) { elements.append($0) }
        elements.resolve(with: st)
        var s = NFTSyncStats(kind: .full)
        s.fullBecause = reason
        let conflicts = elements.removeConflicts()
        s.conflicts = conflicts.count
        if !conflicts.isEmpty { s.conflictClaimants = Self.claimants(of: conflicts, in: update.current) }
        s.elementsAdded = elements.count
        s.chainsAdded = st.chains.count + st.picks.count
        let existing = existingChains(ctx)
        let declarations = NFTRuleset.fullSync(state: st, elements: elements.intervalElements,
                                               settings: settings, families: families, mode: .refill,
                                               dropInvalid: dropInvalid)
        let batch = NFTRuleset.elementBatch(state: st, elements: elements, families: families,
                                            firstSequence: nextSequence())
        let stale = NFTRuleset.staleChains(state: st, settings: settings, families: families, existing: existing)
        if let dump = ProcessInfo.processInfo.environment["KPROXY_NFT_DUMP"] {
            try? (declarations + "# … \(elements.count) elements by netlink …\n" + stale)
                .write(toFile: dump, atomically: true, encoding: .utf8)
        }
        s.bytes = declarations.utf8.count + batch.bytes.count + stale.utf8.count
        let t1 = clock.now
        s.renderSeconds = seconds(t1 - t0)
        do {
            try ctx.run(declarations)
            try NFTNetlinkSocket.apply(batch)
            if !stale.isEmpty { try ctx.run(stale) }
        } catch let first {
            // The tables' declared shape may differ (an older kproxy), or something else is in
            // the way: replace them whole, every element included, in one transaction.
            s.replacedBecause = "\(first)"
            let replace = NFTRuleset.fullSync(state: st, elements: elements.all, settings: settings,
                                              families: families, mode: .replace, dropInvalid: dropInvalid)
            do {
                try ctx.run(replace)
            } catch {
                let failure = NFTError(message: "\(error)\n(after a first attempt failed with: \(first))")
                s.error = failure.description
                stats = s
                throw failure
            }
        }
        s.kernelSeconds = seconds(clock.now - t1)
        var adopted = st
        adopted.conflicts = conflicts
        state = adopted
        appliedVersion = update.current.version
        if let previous = update.previous {
            let diff = TableDiff.between(previous, update.current)
            cleanConntrack(ConntrackCleanup.filters(names: diff.touched, previous: previous, current: update.current),
                           stats: &s)
        }
        stats = s
    }

    /// The destinations behind contested element keys, each with the service ports that claim it,
    /// so that the operator can be told which Services collide. Runs only when there are conflicts.
    static func claimants(of conflicts: Set<NFTElementKey>, in table: ServiceTable) -> [String] {
        // Every contested element is keyed by its destination first: `addr . proto . port`
        // (cluster, external, load-balancer IP) or `proto . port` (node port).
        var destinations = Set<[NFTField]>()
        for c in conflicts {
            if case .address? = c.key.first, c.key.count >= 3 { destinations.insert(Array(c.key.prefix(3))) }
            else if case .proto? = c.key.first, c.key.count >= 2 { destinations.insert(Array(c.key.prefix(2))) }
        }
        var out: [String] = []
        for d in destinations {
            let claims: (ServicePortEntry) -> Bool
            let what: String
            if d.count == 3, case .address(let ip) = d[0], case .proto(let p) = d[1], case .port(let port) = d[2] {
                claims = { $0.protocol == p && $0.port == port
                    && ($0.clusterIPs.contains(ip) || $0.externalIPs.contains(ip) || $0.loadBalancerIPs.contains(ip)) }
                what = "\(ip) \(p.lowercased) \(port)"
            } else if case .proto(let p) = d[0], case .port(let port) = d[1] {
                claims = { $0.protocol == p && $0.nodePort == port }
                what = "node port \(p.lowercased) \(port)"
            } else {
                continue
            }
            let names = table.entries.values.filter(claims).map(\.name.description).sorted()
            out.append("\(what): \(names.joined(separator: ", "))")
        }
        return out.sorted()
    }

    /// kube-proxy's rule: drop invalid forwarded packets unless conntrack is TCP-liberal in
    /// this namespace (read on the data plane's thread, so from the programmed namespace).
    private var dropInvalid: Bool {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal", encoding: .utf8)
        else { return true }
        return text.trimmingCharacters(in: .whitespacesAndNewlines) == "0"
    }

    private var sequence = UInt32.random(in: 1...UInt32.max / 2)
    private func nextSequence() -> UInt32 {
        sequence &+= 1_000_000
        return sequence
    }

    private func cleanConntrack(_ filters: [ConntrackFilter], stats s: inout NFTSyncStats) {
        guard conntrackCleanup, !filters.isEmpty else { return }
        s.conntrackFilters = filters.count
        do {
            s.conntrackDeleted = try ConntrackNetlink().delete(filters)
        } catch {
            s.conntrackError = "\(error)"
        }
    }

    /// The chains kproxy's tables hold now, per family (empty when a table does not exist).
    /// `list chains FAMILY` needs only the table and chain caches, not rules or elements.
    private func existingChains(_ ctx: NFTContext) -> [IPFamily: Set<String>] {
        var out: [IPFamily: Set<String>] = [:]
        for family in families {
            let f = NFTFamily(family)
            guard let text = try? ctx.run("list chains \(f.table)") else { continue }
            out[family] = Self.chainNames(in: text, table: NFTShape.tableName)
        }
        return out
    }

    /// Chain names of one table in `nft list chains` output.
    static func chainNames(in listing: String, table: String) -> Set<String> {
        var names = Set<String>()
        var inTable = false
        for line in listing.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.hasPrefix("table ") {
                inTable = t.hasSuffix(" \(table) {")
            } else if inTable, t.hasPrefix("chain "), t.hasSuffix("{") {
                names.insert(String(t.dropFirst(6).dropLast(1)).trimmingCharacters(in: .whitespaces))
            }
        }
        return names
    }

    private func cleanupOnThread() throws {
        let ctx = try requireContext()
        state = nil
        appliedVersion = nil
        // Not `list tables` first: nft 1.0.6 loads every set element into its cache for it
        // (11 s with 250k elements). A table that is not there is simply not deleted.
        for family in IPFamily.allCases {
            do {
                try ctx.run("delete table \(NFTFamily(family).qualifiedTable)")
            } catch let error as NFTError where error.message.contains("No such file or directory") {
                continue
            }
        }
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// Carries the non-Sendable context to its thread for release.
final class ContextBox: @unchecked Sendable {
    var context: NFTContext?
    init(_ c: NFTContext?) { context = c }
}
