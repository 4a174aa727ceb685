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

    var ids: [ObjectID] { entries.map(\.id) }

    subscript(id: ObjectID) -> Int? {
        get {
            let i = entries.lowerBound(of: id) { $0.id }
            return i < entries.count && entries[i].id == id ? entries[i].fingerprint : nil
        }
        set {
            let i = entries.lowerBound(of: id) { $0.id }
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

extension Array {
    /// In an array sorted by id: the first index whose id is not below `id`.
    func lowerBound(of id: ObjectID, by key: (Element) -> ObjectID) -> Int {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if key(self[mid]) < id { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
