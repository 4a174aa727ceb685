import NetworkTypes
import ServiceTable

/// Pure rendering of kproxy's nftables ruleset: the text a table produces, and the
/// transactions that bring the kernel from one table to the next.
public enum NFTRuleset {
    /// The whole ruleset `table` produces, as an nft script that loads into an empty ruleset
    /// (`nft -f`). What `kproxy rules --mode nftables` prints.
    public static func render(_ table: ServiceTable, settings: ProxySettings,
                              families: [IPFamily] = IPFamily.allCases) -> String {
        var elements: [NFTElement] = []
        let state = RulesetState(table: table, families: families) { elements.append($0) }
        elements = elements.map(state.resolved)
        return fullSync(state: state, elements: elements, settings: settings, families: families, mode: .fresh)
    }

    enum FullSyncMode {
        /// Into an empty ruleset: declarations, chains and every element.
        case fresh
        /// The first step of a full sync over whatever kproxy's tables hold: declarations
        /// (idempotent), every chain flushed and refilled, new pick maps, and the interval sets
        /// refilled. The other elements follow in one netlink batch (`NFTNetlinkBatch`), unused
        /// chains are deleted last (`staleChains`): each step leaves a consistent ruleset.
        case refill
        /// The tables are deleted and recreated with every element in one transaction (the
        /// fallback when their declared shape differs, e.g. left by another kproxy version).
        case replace
    }

    /// A full-sync transaction. With `.refill`, pass only the interval elements.
    static func fullSync(state: RulesetState, elements: [NFTElement], settings: ProxySettings,
                         families: [IPFamily], mode: FullSyncMode, dropInvalid: Bool = true) -> String {
        var w = TransactionWriter(capacity: elements.count * 48 + 8192)
        let neededChains = Dictionary(grouping: state.chains.items, by: \.family)
        let neededPicks = Dictionary(grouping: state.picks.items, by: \.family)
        let refill = mode == .refill
        for family in families {
            let f = NFTFamily(family)
            if mode == .replace {
                w.declareTable(f)
                w.line("delete table \(f.qualifiedTable)")
            }
            w.declareTable(f)
            w.declareCollections(f)
            if refill {
                for c in NFTShape.Collection.fixed where c.isInterval { w.flush(f, c) }
            }
            // Pick chains and their maps, then dispatch chains, then the fixed chains.
            for p in (neededPicks[family] ?? []).sorted() {
                w.line(p.map.declaration(f))
                w.chain(f, name: p.name, hook: nil, rules: p.rules(f), flush: refill)
            }
            for ch in (neededChains[family] ?? []).sorted() {
                w.chain(f, name: ch.name, hook: nil, rules: ch.rules(f), flush: refill)
            }
            for ch in NFTShape.fixedChains(f, settings: settings, dropInvalid: dropInvalid) {
                w.chain(f, name: ch.name, hook: ch.hook, rules: ch.rules, flush: refill)
            }
            w.elements("add", NFTShape.settingsElements(f, settings: settings))
        }
        w.elements("add", elements.filter { families.contains($0.family) && (!refill || $0.collection.isInterval) })
        return w.text
    }

    /// The element part of a refill: for each non-interval map and set kproxy needs, a flush
    /// and its elements, as one nfnetlink batch (one kernel transaction).
    static func elementBatch(state: RulesetState, elements: NFTElementGroups, families: [IPFamily],
                             firstSequence: UInt32) -> NFTNetlinkBatch {
        var batch = NFTNetlinkBatch(firstSequence: firstSequence)
        for family in families {
            var collections = NFTShape.Collection.fixed.filter { !$0.isInterval }
            collections += state.picks.items.filter { $0.family == family }.sorted().map(\.map)
            for c in collections {
                batch.flush(family: family, table: NFTShape.tableName, set: c.name)
                add(elements[family, c], to: &batch)
            }
        }
        batch.end()
        return batch
    }

    /// Adds elements of one family and collection to a batch.
    private static func add(_ list: [NFTElement], to batch: inout NFTNetlinkBatch) {
        guard let first = list.first else { return }
        batch.add(family: first.family, table: NFTShape.tableName, set: first.collection.name, count: list.count) { b, i in
            let e = list[i]
            b.key(e.key)
            switch e.value {
            case nil: break
            case .endpoint(let ip, let port)?: b.data([.address(ip), .port(port)])
            case .goto(let chain)?: b.verdict(code: -4, chain: chain)     // NFT_GOTO
            case .priority(let n)?: b.data([.priority(n)])
            case .dispatch(let chain)?: preconditionFailure("unresolved dispatch chain \(chain.name)")
            }
        }
    }

    /// A large incremental step split like a full sync: `incrementalChains` (new chains and
    /// pick maps, libnftables), this batch (every element removal, then every addition, one
    /// kernel transaction), then `incrementalCleanup` (chains nobody uses).
    static func incrementalBatch(_ delta: RulesetState.Delta, firstSequence: UInt32) -> NFTNetlinkBatch {
        var batch = NFTNetlinkBatch(firstSequence: firstSequence)
        func groups(_ s: Set<NFTElement>) -> [[NFTElement]] {
            Dictionary(grouping: s.filter { !$0.collection.isInterval }) { FamilyCollection(family: $0.family, collection: $0.collection) }
                .sorted { $0.key < $1.key }.map(\.value)
        }
        for list in groups(delta.elements.removed) {
            batch.delete(family: list[0].family, table: NFTShape.tableName, set: list[0].collection.name,
                         count: list.count) { b, i in b.key(list[i].key) }
        }
        for list in groups(delta.elements.added) { add(list, to: &batch) }
        batch.end()
        return batch
    }

    /// The libnftables part of a large incremental step before the batch: new pick chains with
    /// their maps, new dispatch chains, and interval-set element changes.
    static func incrementalChains(_ delta: RulesetState.Delta) -> String {
        var w = TransactionWriter()
        addNewChains(delta, to: &w)
        w.elements("delete", delta.elements.removed.filter(\.collection.isInterval))
        w.elements("add", delta.elements.added.filter(\.collection.isInterval))
        return w.text
    }

    /// New pick chains (with their maps) first, then the dispatch chains that jump to them.
    private static func addNewChains(_ delta: RulesetState.Delta, to w: inout TransactionWriter) {
        for p in delta.picks.added.sorted() {
            let f = NFTFamily(p.family)
            w.line(p.map.declaration(f))
            w.chain(f, name: p.name, hook: nil, rules: p.rules(f), flush: false)
        }
        for ch in delta.chains.added.sorted() {
            let f = NFTFamily(ch.family)
            w.chain(f, name: ch.name, hook: nil, rules: ch.rules(f), flush: false)
        }
    }

    /// The libnftables part of a large incremental step after the batch: chains and pick maps
    /// nobody uses any more.
    static func incrementalCleanup(_ delta: RulesetState.Delta) -> String {
        var w = TransactionWriter()
        for ch in delta.chains.removed.sorted() {
            w.deleteChain(NFTFamily(ch.family), name: ch.name)
        }
        for p in delta.picks.removed.sorted() {
            let f = NFTFamily(p.family)
            w.deleteChain(f, name: p.name)
            w.line("delete map \(f.qualifiedTable) \(p.map.name)")
        }
        return w.text
    }

    /// The last step of a refill: chains (and pick maps) in `existing` that `state` no longer uses.
    static func staleChains(state: RulesetState, settings: ProxySettings, families: [IPFamily],
                            existing: [IPFamily: Set<String>]) -> String {
        var w = TransactionWriter()
        for family in families {
            let f = NFTFamily(family)
            var keep = Set(NFTShape.fixedChains(f, settings: settings).map(\.name))
            keep.formUnion(state.chains.items.filter { $0.family == family }.map(\.name))
            keep.formUnion(state.picks.items.filter { $0.family == family }.map(\.name))
            let stale = (existing[family] ?? []).subtracting(keep)
            let stalePicks = stale.compactMap { PickChain(family: family, name: $0) }
            // Dispatch chains first: they jump to pick chains.
            for name in stale.subtracting(stalePicks.map(\.name)).sorted() { w.deleteChain(f, name: name) }
            for p in stalePicks.sorted() {
                w.deleteChain(f, name: p.name)
                w.line("delete map \(f.qualifiedTable) \(p.map.name)")
            }
        }
        return w.text
    }

    /// An incremental transaction: new pick chains (with their maps) and dispatch chains,
    /// element removals, element additions, then chains and maps nobody uses any more.
    static func incremental(_ delta: RulesetState.Delta) -> String {
        var w = TransactionWriter()
        addNewChains(delta, to: &w)
        w.elements("delete", delta.elements.removed)
        w.elements("add", delta.elements.added)
        return w.text + incrementalCleanup(delta)
    }
}

struct FamilyCollection: Hashable, Comparable, Sendable {
    var family: IPFamily
    var collection: NFTShape.Collection
    static func < (a: Self, b: Self) -> Bool { (a.family, a.collection) < (b.family, b.collection) }
}

/// A full sync's elements grouped by family and collection, as the element batch writes them,
/// so that a 50k-service sync holds each element once (no flat list, no regrouped copy).
struct NFTElementGroups: Sendable {
    private var groups: [FamilyCollection: [NFTElement]] = [:]
    private(set) var count = 0

    mutating func append(_ e: NFTElement) {
        groups[FamilyCollection(family: e.family, collection: e.collection), default: []].append(e)
        count += 1
    }

    subscript(family: IPFamily, collection: NFTShape.Collection) -> [NFTElement] {
        groups[FamilyCollection(family: family, collection: collection)] ?? []
    }

    /// Gives destinations their dispatch chain's number (`RulesetState.resolved`).
    mutating func resolve(with state: RulesetState) {
        // In place (the keys copied out first, so no iterator shares the storage): at 50k
        // services a mapped copy would add to the full sync's peak.
        for group in groups.keys.filter({ $0.collection == .serviceIPs || $0.collection == .nodePorts }) {
            for i in groups[group]!.indices { groups[group]![i] = state.resolved(groups[group]![i]) }
        }
    }

    /// Every element (for the rare whole-table replacement through libnftables).
    var all: [NFTElement] { groups.keys.sorted().flatMap { groups[$0]! } }

    var intervalElements: [NFTElement] {
        groups.keys.filter(\.collection.isInterval).sorted().flatMap { groups[$0]! }
    }

    /// Drops elements whose key another element of their collection already claimed, and returns
    /// those keys. Cluster IPs and node ports are unique by API validation, but two Services may
    /// list the same external IP and port (and manifests have no validation across objects); the
    /// kernel refuses a map with two values for one key, and one bad Service must not stop the
    /// whole sync. The first claimant's dispatch element and its backends come first, so the
    /// destination stays consistent (another claimant's extra indexes are unused). Shared
    /// collections are deduplicated already.
    mutating func removeConflicts() -> Set<NFTElementKey> {
        var conflicts = Set<NFTElementKey>()
        for (group, list) in groups where !group.collection.isShared {
            var seen = Set<[NFTField]>(minimumCapacity: list.count)
            var dropped = Set<Int>()
            for (i, e) in list.enumerated() where !seen.insert(e.key).inserted {
                dropped.insert(i)
                conflicts.insert(NFTElementKey(e))
            }
            guard !dropped.isEmpty else { continue }
            groups[group] = list.enumerated().filter { !dropped.contains($0.offset) }.map(\.element)
            count -= dropped.count
        }
        return conflicts
    }
}

/// An element's identity in its map: family, collection and key, without the value.
struct NFTElementKey: Hashable, Sendable {
    var family: IPFamily
    var collection: NFTShape.Collection
    var key: [NFTField]
    init(_ e: NFTElement) {
        family = e.family
        collection = e.collection
        key = e.key
    }
}
