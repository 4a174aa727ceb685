import NetworkTypes
import ServiceTable

/// Pure rendering of kproxy's nftables ruleset: the text a table produces, and the
/// transactions that bring the kernel from one table to the next.
public enum NFTRuleset {
    /// The whole ruleset `table` produces, as an nft script that loads into an empty ruleset
    /// (`nft -f`). What `kproxy rules --mode nftables` prints.
    public static func render(_ table: ServiceTable, settings: ProxySettings,
                              families: [IPFamily] = IPFamily.allCases) -> String {
        let state = RulesetState(table: table, families: families)
        return fullSync(state: state, settings: settings, families: families, existing: [:], mode: .fresh)
    }

    enum FullSyncMode {
        /// Into an empty ruleset: declarations and contents only.
        case fresh
        /// Over whatever kproxy's tables hold: every fixed map, set and chain is flushed and
        /// refilled, chains and per-index maps in `existing` that are no longer used are
        /// deleted. The session-affinity map is kept.
        case refill
        /// The tables are deleted and recreated in the same transaction (the fallback when
        /// their declared shape differs, e.g. left by another kproxy version).
        case replace
    }

    /// A full-sync transaction. `existing`: the chain names kproxy's tables hold now.
    static func fullSync(state: RulesetState, settings: ProxySettings, families: [IPFamily],
                         existing: [IPFamily: Set<String>], mode: FullSyncMode) -> String {
        var w = TransactionWriter(capacity: state.elements.count * 48 + 8192)
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
                for c in NFTShape.Collection.fixed { w.flush(f, c) }
            }
            // Pick chains and their maps, then dispatch chains, then the fixed chains.
            let picks = (neededPicks[family] ?? []).sorted()
            for p in picks {
                w.line(p.map.declaration(f))
                if refill { w.flush(f, p.map) }
                w.chain(f, name: p.name, hook: nil, rules: p.rules(f), flush: refill)
            }
            let dispatch = (neededChains[family] ?? []).sorted()
            for ch in dispatch {
                w.chain(f, name: ch.name, hook: nil, rules: ch.rules(f), flush: refill)
            }
            let fixed = NFTShape.fixedChains(f, settings: settings)
            for ch in fixed {
                w.chain(f, name: ch.name, hook: ch.hook, rules: ch.rules, flush: refill)
            }
            if refill {
                // Chains nobody needs any more: dispatch chains first (they jump to pick chains),
                // then pick chains with their maps.
                let keep = Set(dispatch.map(\.name)).union(fixed.map(\.name)).union(picks.map(\.name))
                let stale = (existing[family] ?? []).subtracting(keep)
                let stalePicks = stale.compactMap { PickChain(family: family, name: $0) }
                for name in stale.subtracting(stalePicks.map(\.name)).sorted() { w.deleteChain(f, name: name) }
                for p in stalePicks.sorted() {
                    w.deleteChain(f, name: p.name)
                    w.line("delete map \(f.qualifiedTable) \(p.map.name)")
                }
            }
            w.elements("add", NFTShape.settingsElements(f, settings: settings))
        }
        w.elements("add", state.elements.items.filter { families.contains($0.family) })
        return w.text
    }

    /// An incremental transaction: new pick chains (with their maps) and dispatch chains,
    /// element removals, element additions, then chains and maps nobody uses any more.
    static func incremental(_ delta: RulesetState.Delta) -> String {
        var w = TransactionWriter()
        for p in delta.picks.added.sorted() {
            let f = NFTFamily(p.family)
            w.line(p.map.declaration(f))
            w.chain(f, name: p.name, hook: nil, rules: p.rules(f), flush: false)
        }
        for ch in delta.chains.added.sorted() {
            let f = NFTFamily(ch.family)
            w.chain(f, name: ch.name, hook: nil, rules: ch.rules(f), flush: false)
        }
        w.elements("delete", delta.elements.removed)
        w.elements("add", delta.elements.added)
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
}
