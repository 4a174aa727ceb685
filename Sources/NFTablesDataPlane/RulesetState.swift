import NetworkTypes
import ServiceTable

/// What kproxy believes its tables hold: every element and dispatch chain with the number of
/// service ports that need it (a cluster IP shared by two ports, an endpoint pair shared by two
/// services, a dispatch chain shared by thousands). Element- and chain-level changes fall out of
/// the counts going to and from zero.
struct RulesetState: Sendable {
    private(set) var elements: [NFTElement: Int] = [:]
    private(set) var chains: [DispatchChain: Int] = [:]

    /// The changes one incremental step makes.
    struct Delta: Sendable {
        var addedElements: Set<NFTElement> = []
        var removedElements: Set<NFTElement> = []
        var addedChains: Set<DispatchChain> = []
        var removedChains: Set<DispatchChain> = []
        var isEmpty: Bool {
            addedElements.isEmpty && removedElements.isEmpty && addedChains.isEmpty && removedChains.isEmpty
        }
    }

    init() {}

    /// The state a whole table produces.
    init(table: ServiceTable, families: [IPFamily]) {
        for entry in table.entries.values {
            for f in families {
                var ignored = Delta()
                insert(ElementRenderer.contribution(of: entry, family: f), into: &ignored, tracking: false)
            }
        }
    }

    mutating func insert(_ c: Contribution, into delta: inout Delta, tracking: Bool = true) {
        for e in c.elements {
            let n = elements[e, default: 0]
            elements[e] = n + 1
            if n == 0, tracking {
                if delta.removedElements.remove(e) == nil { delta.addedElements.insert(e) }
            }
        }
        for ch in c.chains {
            let n = chains[ch, default: 0]
            chains[ch] = n + 1
            if n == 0, tracking {
                if delta.removedChains.remove(ch) == nil { delta.addedChains.insert(ch) }
            }
        }
    }

    mutating func remove(_ c: Contribution, into delta: inout Delta) {
        for e in c.elements {
            guard let n = elements[e] else { continue }
            if n <= 1 {
                elements[e] = nil
                if delta.addedElements.remove(e) == nil { delta.removedElements.insert(e) }
            } else {
                elements[e] = n - 1
            }
        }
        for ch in c.chains {
            guard let n = chains[ch] else { continue }
            if n <= 1 {
                chains[ch] = nil
                if delta.addedChains.remove(ch) == nil { delta.removedChains.insert(ch) }
            } else {
                chains[ch] = n - 1
            }
        }
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
        for name in names {
            if let new = current[name] {
                for f in families { insert(ElementRenderer.contribution(of: new, family: f), into: &delta) }
            }
        }
        // An element whose key stays but whose value changes is a remove plus an add; an element
        // that was removed and re-added unchanged cancelled out above.
        return delta
    }
}
