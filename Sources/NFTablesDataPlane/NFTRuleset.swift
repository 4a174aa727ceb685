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
        return fullSync(state: state, settings: settings, families: families, existingChains: [:], replace: false,
                        flush: false)
    }

    /// A full-sync transaction. With `flush`, the tables are declared (idempotently) and every
    /// non-dynamic map, set and chain is flushed and refilled, so a ruleset left by an earlier
    /// process is replaced atomically and session-affinity memory survives; dispatch chains in
    /// `existingChains` that are no longer used are deleted. With `replace`, the tables are
    /// deleted and recreated in the same transaction instead (the fallback when their declared
    /// shape changed).
    static func fullSync(state: RulesetState, settings: ProxySettings, families: [IPFamily],
                         existingChains: [IPFamily: Set<String>], replace: Bool, flush: Bool) -> String {
        var w = TransactionWriter(capacity: state.elements.count * 48 + 8192)
        let needed = Dictionary(grouping: state.chains.keys, by: \.family)
        for family in families {
            let f = NFTFamily(family)
            if replace {
                w.declareTable(f)
                w.line("delete table \(f.qualifiedTable)")
            }
            w.declareTable(f)
            w.declareCollections(f)
            if flush && !replace {
                for c in NFTShape.Collection.allCases {
                    w.line("flush \(c.isMap ? "map" : "set") \(f.qualifiedTable) \(c.rawValue)")
                }
            }
            let fixed = NFTShape.fixedChains(f, settings: settings)
            // Dispatch chains first: fixed chains do not reference them, elements do.
            let dispatch = (needed[family] ?? []).sorted()
            for ch in dispatch {
                w.chain(f, name: ch.name, hook: nil, rules: ch.rules(f), flush: flush && !replace)
            }
            for ch in fixed {
                w.chain(f, name: ch.name, hook: ch.hook, rules: ch.rules, flush: flush && !replace)
            }
            if !replace {
                let keep = Set(dispatch.map(\.name)).union(fixed.map(\.name))
                for name in (existingChains[family] ?? []).subtracting(keep).sorted() {
                    w.deleteChain(f, name: name)
                }
            }
            w.elements("add", NFTShape.settingsElements(f, settings: settings))
        }
        w.elements("add", state.elements.keys.filter { families.contains($0.family) })
        return w.text
    }

    /// An incremental transaction: new dispatch chains, element removals, element additions,
    /// then chains nobody uses any more.
    static func incremental(_ delta: RulesetState.Delta) -> String {
        var w = TransactionWriter()
        for ch in delta.addedChains.sorted() {
            let f = NFTFamily(ch.family)
            w.chain(f, name: ch.name, hook: nil, rules: ch.rules(f), flush: true)
        }
        w.elements("delete", delta.removedElements)
        w.elements("add", delta.addedElements)
        for ch in delta.removedChains.sorted() {
            w.deleteChain(NFTFamily(ch.family), name: ch.name)
        }
        return w.text
    }
}
