import NetworkTypes
import ServiceTable

/// What kproxy needs to remember about its tables between syncs: the reference counts of what
/// several service ports share — cluster IPs of multi-port services, hairpin pairs, dispatch
/// chains — and the pick chains (with their maps) the dispatch chains in use need, counted per
/// dispatch chain rather than per destination. Every other element's key belongs to one service port,
/// so its changes follow from that port's old and new entries alone and need no memory.
struct RulesetState: Sendable {
    /// Kept as compact keys (one address each): at 50k services this is one entry per cluster IP.
    private(set) var shared = SharedCounts()
    private(set) var chains = Counted<DispatchChain>()
    private(set) var picks = Counted<PickChain>()
    /// The number of each dispatch chain in use: what `@service-ips` and `@service-nodeports` map
    /// a destination to, and `@dispatch-chains` maps to the chain. A full sync numbers the chains
    /// 1, 2, … in order; a chain that appears later gets the next number never used since.
    private(set) var dispatchNumbers: [DispatchChain: UInt32] = [:]
    private var nextDispatchNumber: UInt32 = 1
    /// Keys several service ports claimed at the last full sync (only one was programmed): an
    /// incremental step touching one of them is done as a full sync instead.
    var conflicts = Set<NFTElementKey>()

    /// The changes one incremental step makes.
    struct Delta: Sendable {
        var elements = Counted<NFTElement>.Change()
        var chains = Counted<DispatchChain>.Change()
        var picks = Counted<PickChain>.Change()
        var isEmpty: Bool { elements.isEmpty && chains.isEmpty && picks.isEmpty }

        func touches(_ keys: Set<NFTElementKey>) -> Bool {
            !keys.isEmpty && (elements.added.contains { keys.contains(NFTElementKey($0)) }
                || elements.removed.contains { keys.contains(NFTElementKey($0)) })
        }
    }

    init() {}

    /// The state of a whole table; every element is handed to `sink` once (shared ones deduplicated),
    /// the `@dispatch-chains` elements last. Destinations come with their dispatch chain named
    /// (`NFTValue.dispatch`): pass them through `resolved(_:)` before writing them.
    init(table: ServiceTable, families: [IPFamily], elements sink: (NFTElement) -> Void = { _ in }) {
        var ignored = Delta()
        for entry in table.entries.values {
            for f in families {
                let c = ElementRenderer.contribution(of: entry, family: f, nodeAddresses: table.node.addresses)
                for e in c.elements {
                    if e.collection.isShared {
                        if shared.insert(e, into: &ignored.elements) { sink(e) }
                    } else {
                        sink(e)
                    }
                }
                for ch in c.chains where chains.insert(ch, into: &ignored.chains) {
                    for p in ch.picks { picks.insert(p, into: &ignored.picks) }
                }
            }
        }
        for ch in chains.items.sorted() { sink(number(ch)) }
    }

    /// Numbers a dispatch chain that just appeared; returns its `@dispatch-chains` element.
    private mutating func number(_ chain: DispatchChain) -> NFTElement {
        let n = nextDispatchNumber
        nextDispatchNumber += 1
        dispatchNumbers[chain] = n
        return Self.dispatchElement(chain, n)
    }

    private static func dispatchElement(_ chain: DispatchChain, _ n: UInt32) -> NFTElement {
        NFTElement(family: chain.family, collection: .dispatchChains, key: [.priority(n)], value: .goto(chain.name))
    }

    /// The element as the kernel holds it: a destination's dispatch chain replaced by its number.
    func resolved(_ e: NFTElement) -> NFTElement {
        guard case .dispatch(let chain)? = e.value else { return e }
        guard let n = dispatchNumbers[chain] else { preconditionFailure("dispatch chain \(chain.name) has no number") }
        var out = e
        out.value = .priority(n)
        return out
    }

    /// Moves the state from `previous` to `current` for the service ports `names`, returning
    /// the element- and chain-level changes. Work is proportional to those service ports.
    mutating func update(names: Set<ServicePortName>, previous: ServiceTable, current: ServiceTable,
                         families: [IPFamily]) -> Delta {
        var delta = Delta()
        for name in names {
            for f in families {
                let old = previous[name].map {
                    ElementRenderer.contribution(of: $0, family: f, nodeAddresses: previous.node.addresses)
                } ?? Contribution()
                let new = current[name].map {
                    ElementRenderer.contribution(of: $0, family: f, nodeAddresses: current.node.addresses)
                } ?? Contribution()
                let oldOwn = Set(old.elements.filter { !$0.collection.isShared })
                let newOwn = Set(new.elements.filter { !$0.collection.isShared })
                // An element one port drops and another adds unchanged cancels out; one whose key
                // stays but whose value changes is a delete plus an add.
                for e in oldOwn.subtracting(newOwn) { delta.elements.disappeared(e) }
                for e in newOwn.subtracting(oldOwn) { delta.elements.appeared(e) }
                for e in old.elements where e.collection.isShared { shared.remove(e, into: &delta.elements) }
                for e in new.elements where e.collection.isShared { shared.insert(e, into: &delta.elements) }
                for ch in old.chains { chains.remove(ch, into: &delta.chains) }
                for ch in new.chains { chains.insert(ch, into: &delta.chains) }
            }
        }
        // Pick chains follow the dispatch chains that appeared or disappeared, and so do their
        // numbers. Numbers are not reused before the next full sync, so an element removed and
        // one added in this step never share a key.
        for ch in delta.chains.removed {
            for p in ch.picks { picks.remove(p, into: &delta.picks) }
            if let n = dispatchNumbers.removeValue(forKey: ch) {
                delta.elements.disappeared(Self.dispatchElement(ch, n))
            }
        }
        for ch in delta.chains.added.sorted() {
            for p in ch.picks { picks.insert(p, into: &delta.picks) }
            delta.elements.appeared(number(ch))
        }
        // What is written names chain numbers; removals need only the key.
        delta.elements.added = Set(delta.elements.added.map(resolved))
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

        /// The item is now needed: an addition, unless it cancels a removal in this same change.
        mutating func appeared(_ item: Item) {
            if removed.remove(item) == nil { added.insert(item) }
        }

        /// The item is no longer needed: a removal, unless it cancels an addition in this same change.
        mutating func disappeared(_ item: Item) {
            if added.remove(item) == nil { removed.insert(item) }
        }
    }

    var items: Dictionary<Item, Int>.Keys { counts.keys }
    var count: Int { counts.count }

    /// Returns whether the item is new.
    @discardableResult
    mutating func insert(_ item: Item, into change: inout Change) -> Bool {
        let n = counts[item, default: 0]
        counts[item] = n + 1
        guard n == 0 else { return false }
        change.appeared(item)
        return true
    }

    mutating func remove(_ item: Item, into change: inout Change) {
        guard let n = counts[item] else { return }
        if n <= 1 {
            counts[item] = nil
            change.disappeared(item)
        } else {
            counts[item] = n - 1
        }
    }
}

/// Reference counts of the shared elements — a cluster IP (`clusterIPs`) or a hairpin pair
/// (`ip . ip`, `hairpin`) — keyed by the one address they hold rather than by the element, so the
/// count costs a few bytes per address instead of an element with its key array. IPv4 keys (nearly
/// all of them: every cluster IP and every endpoint on this node) are packed into one integer.
struct SharedCounts: Sendable {
    struct Key: Hashable, Sendable {
        var hairpin: Bool
        var address: IPAddress
    }
    private var v4: [UInt64: UInt32] = [:]
    private var other: [Key: UInt32] = [:]
    var count: Int { v4.count + other.count }

    private static func key(_ e: NFTElement) -> Key? {
        switch (e.collection, e.key.first) {
        case (.clusterIPs, .address(let ip)?) where e.key.count == 1: return Key(hairpin: false, address: ip)
        case (.hairpin, .address(let ip)?) where e.key.count == 2 && e.key[1] == .address(ip):
            return Key(hairpin: true, address: ip)
        default: return nil
        }
    }

    /// Adds `delta` to the count of `k`; returns the count before.
    private mutating func adjust(_ k: Key, by delta: Int) -> Int {
        func step(_ n: UInt32?) -> UInt32? {
            let next = Int(n ?? 0) + delta
            return next > 0 ? UInt32(next) : nil
        }
        if case .v4(let a) = k.address {
            let packed = UInt64(a) | (k.hairpin ? 1 << 32 : 0)
            let before = v4[packed]
            v4[packed] = step(before)
            return Int(before ?? 0)
        }
        let before = other[k]
        other[k] = step(before)
        return Int(before ?? 0)
    }

    /// Returns whether the element is new (and so has to be added to the kernel).
    @discardableResult
    mutating func insert(_ e: NFTElement, into change: inout Counted<NFTElement>.Change) -> Bool {
        guard let k = Self.key(e) else { preconditionFailure("not a shared element: \(e.text)") }
        guard adjust(k, by: 1) == 0 else { return false }
        change.appeared(e)
        return true
    }

    mutating func remove(_ e: NFTElement, into change: inout Counted<NFTElement>.Change) {
        guard let k = Self.key(e) else { return }
        if adjust(k, by: -1) == 1 { change.disappeared(e) }
    }
}
