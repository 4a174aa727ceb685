/// A change reported by a source: an object was created or updated, or deleted.
public enum ObjectEvent: Sendable, Hashable {
    case upsert(KubeObject)
    case delete(ObjectID)

    public var id: ObjectID {
        switch self {
        case .upsert(let o): return o.id
        case .delete(let id): return id
        }
    }
}
