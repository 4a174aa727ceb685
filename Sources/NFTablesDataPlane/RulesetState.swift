import NetworkTypes
import ServiceTable

/// What kproxy believes its tables hold: every element, dispatch chain and pick chain with the
/// number of service ports that need it (a cluster IP shared by two ports, an endpoint pair
/// shared by two services, a dispatch chain shared by thousands). Element- and chain-level
/// changes fall out of the counts going to and from zero.
struct RulesetState: Sendable {
    private(set) var elements = Counted<NFTElement>()
    private(set) var chains = Counted<DispatchChain>()
    private(set) var picks = Counted<PickChain>()

    /// The changes one incremental step makes.
    struct Delta: Sendable {
        var elements = Counted<NFTElement>.Change()
        var chains = Counted<DispatchChain>.Change()
        var picks = Counted<PickChain>.Change()
        var isEmpty: Bool { elements.isEmpty && chains.isEmpty && picks.isEmpty }
    }

    init() {}

    /// The state a whole table produces.
    init(table: ServiceTable, families: [IPFamily]) {
        var ignored = Delta()
        for entry in table.entries.values {
            for f in families { insert(ElementRenderer.contribution(of: entry, family: f), into: &ignored) }
        }
    }

    mutating func insert(_ c: Contribution, into delta: inout Delta) {
        for e in c.elements { elements.insert(e, into: &delta.elements) }
        for ch in c.chains { chains.insert(ch, into: &delta.chains) }
        for p in c.picks { picks.insert(p, into: &delta.picks) }
    }

    mutating func remove(_ c: Contribution, into delta: inout Delta) {
        for e in c.elements { elements.remove(e, into: &delta.elements) }
        for ch in c.chains { chains.remove(ch, into: &delta.chains) }
        for p in c.picks { picks.remove(p, into: &delta.picks) }
    }

    /// Moves the state from `previous` to `current` for the service ports `names`, returning
    /// the element- and chain-level changes. Work is proportional to those service ports.
    mutating func update(names: Set<ServicePortName>, previous: ServiceTable, current: ServiceTable,
                         families: [IPFamily]) -> Delta {
        var delta = Delta()
        for name in names {
            if let old = previous[name] {
                for f in families { remove(ElementRenderer.contribution(of: old, family: f), into: &delta) }
            }
        }
        // An element removed above and added back unchanged cancels out; one whose key stays but
        // whose value changes is a delete plus an add.
        for name in names {
            if let new = current[name] {
                for f in families { insert(ElementRenderer.contribution(of: new, family: f), into: &delta) }
            }
        }
        return delta
    }
}

/// A multiset that reports when an item appears or disappears.
struct Counted<Item: Hashable & Sendable>: Sendable {
    private(set) var counts: [Item: Int] = [:]

    struct Change: Sendable {
        var added: Set<Item> = []
        var removed: Set<Item> = []
        var isEmpty: Bool { added.isEmpty && removed.isEmpty }
    }

    var items: Dictionary<Item, Int>.Keys { counts.keys }
    var count: Int { counts.count }
    func contains(_ item: Item) -> Bool { counts[item] != nil }

    mutating func insert(_ item: Item, into change: inout Change) {
        let n = counts[item, default: 0]
        counts[item] = n + 1
        if n == 0, change.removed.remove(item) == nil { change.added.insert(item) }
    }

    mutating func remove(_ item: Item, into change: inout Change) {
        guard let n = counts[item] else { return }
        if n <= 1 {
            counts[item] = nil
            if change.added.remove(item) == nil { change.removed.insert(item) }
        } else {
            counts[item] = n - 1
        }
    }
}
