/// What changed between two versions of the service table.
public struct TableDiff: Sendable, Hashable, CustomStringConvertible {
    public var added: Set<ServicePortName>
    public var removed: Set<ServicePortName>
    public var changed: Set<ServicePortName>

    public init(added: Set<ServicePortName> = [], removed: Set<ServicePortName> = [],
                changed: Set<ServicePortName> = []) {
        self.added = added
        self.removed = removed
        self.changed = changed
    }

    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }
    public var count: Int { added.count + removed.count + changed.count }

    /// Every name that was added, removed or changed.
    public var touched: Set<ServicePortName> { added.union(removed).union(changed) }

    public var description: String { "+\(added.count) -\(removed.count) ~\(changed.count)" }

    /// Compares two whole tables, entry by entry: O(size of the tables). The controller produces
    /// diffs incrementally instead; this is the reference they are checked against, and what a
    /// data plane can use after losing track.
    public static func between(_ old: ServiceTable, _ new: ServiceTable) -> TableDiff {
        var diff = TableDiff()
        for (name, entry) in new.entries {
            if let before = old.entries[name] {
                if before != entry { diff.changed.insert(name) }
            } else {
                diff.added.insert(name)
            }
        }
        for name in old.entries.keys where new.entries[name] == nil { diff.removed.insert(name) }
        return diff
    }

    /// This diff followed by `next`: the net change from this one's start to `next`'s end.
    public func followed(by next: TableDiff) -> TableDiff {
        var r = self
        for n in next.added {
            if r.removed.remove(n) != nil { r.changed.insert(n) } else { r.added.insert(n) }
        }
        for n in next.removed {
            if r.added.remove(n) == nil {
                r.changed.remove(n)
                r.removed.insert(n)
            }
        }
        for n in next.changed where !r.added.contains(n) { r.changed.insert(n) }
        return r
    }
}
