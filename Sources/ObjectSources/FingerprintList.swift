import KubeObjects

/// Object fingerprints sorted by identity: what a manifest file (or the whole folder) held, kept
/// in about half the memory of a dictionary (no empty buckets). Lookups are binary searches and
/// combining lists is a walk.
struct FingerprintList: Sendable {
    struct Entry: Sendable {
        var id: ObjectID
        var fingerprint: Int
    }

    /// Sorted by `id`, each id once.
    private(set) var entries: [Entry]

    init() { entries = [] }

    init(_ fingerprints: [ObjectID: Int]) {
        entries = fingerprints.map { Entry(id: $0.key, fingerprint: $0.value) }.sorted { $0.id < $1.id }
    }

    /// From entries already sorted by id, each id once.
    init(sorted: [Entry]) { entries = sorted }

    var count: Int { entries.count }
    var ids: [ObjectID] { entries.map(\.id) }

    /// The first index whose id is not below `id`.
    private func lowerBound(_ id: ObjectID) -> Int {
        var low = 0, high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].id < id { low = mid + 1 } else { high = mid }
        }
        return low
    }

    subscript(id: ObjectID) -> Int? {
        get {
            let i = lowerBound(id)
            return i < entries.count && entries[i].id == id ? entries[i].fingerprint : nil
        }
        set {
            let i = lowerBound(id)
            let present = i < entries.count && entries[i].id == id
            switch (present, newValue) {
            case (true, let value?): entries[i].fingerprint = value
            case (true, nil): entries.remove(at: i)
            case (false, let value?): entries.insert(Entry(id: id, fingerprint: value), at: i)
            case (false, nil): break
            }
        }
    }
}
