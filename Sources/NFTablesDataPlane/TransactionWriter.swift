import NetworkTypes
import ServiceTable

/// Writes nft command text: one buffer is one atomic transaction in libnftables.
struct TransactionWriter {
    private(set) var text = ""
    /// Elements per `add element` command: keeps single commands and parser buffers modest.
    static let chunk = 2_000

    init(capacity: Int = 0) { text.reserveCapacity(capacity) }

    mutating func line(_ s: String) {
        text += s
        text += "\n"
    }

    mutating func declareTable(_ f: NFTFamily) {
        line("add table \(f.qualifiedTable) { comment \"kproxy: service dispatch, owned by kproxy\"; }")
    }

    mutating func declareCollections(_ f: NFTFamily) {
        for c in NFTShape.Collection.fixed { line(c.declaration(f)) }
        line(NFTShape.affinityDeclaration(f))
    }

    /// Declares a chain (idempotent) and, with `flush`, replaces its rules.
    mutating func chain(_ f: NFTFamily, name: String, hook: String?, rules: [String], flush: Bool) {
        if let hook {
            line("add chain \(f.qualifiedTable) \(name) { \(hook) }")
        } else {
            line("add chain \(f.qualifiedTable) \(name)")
        }
        if flush { line("flush chain \(f.qualifiedTable) \(name)") }
        for r in rules { line("add rule \(f.qualifiedTable) \(name) \(r)") }
    }

    mutating func flush(_ f: NFTFamily, _ c: NFTShape.Collection) {
        line("flush \(c.isMap ? "map" : "set") \(f.qualifiedTable) \(c.name)")
    }

    mutating func deleteChain(_ f: NFTFamily, name: String) {
        line("flush chain \(f.qualifiedTable) \(name)")
        line("delete chain \(f.qualifiedTable) \(name)")
    }

    /// `add element` or `delete element` commands for `elements`, grouped by collection.
    mutating func elements(_ verb: String, _ elements: some Collection<NFTElement>) {
        var groups: [FamilyCollection: [NFTElement]] = [:]
        for e in elements { groups[FamilyCollection(family: e.family, collection: e.collection), default: []].append(e) }
        for key in groups.keys.sorted() {
            let list = groups[key]!
            let f = NFTFamily(key.family)
            var i = 0
            while i < list.count {
                let end = min(i + Self.chunk, list.count)
                text += "\(verb) element \(f.qualifiedTable) \(key.collection.name) { "
                for j in i..<end {
                    if j > i { text += ", " }
                    // A delete names the key only.
                    text += verb == "delete" ? list[j].keyText : list[j].text
                }
                text += " }\n"
                i = end
            }
        }
    }
}
