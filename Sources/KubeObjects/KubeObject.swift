/// One object of a kind kproxy reads.
public enum KubeObject: Sendable, Hashable {
    case service(Service)
    case endpointSlice(EndpointSlice)
    case node(Node)

    public var id: ObjectID {
        switch self {
        case .service(let s): return ObjectID(kind: .service, name: s.id)
        case .endpointSlice(let e): return ObjectID(kind: .endpointSlice, name: e.id)
        case .node(let n): return ObjectID(kind: .node, name: NamespacedName(namespace: "", name: n.metadata.name))
        }
    }

    /// Problems that make this object unusable (empty when it is valid).
    public func validate() -> [FieldError] {
        switch self {
        case .service(let s): return s.validate()
        case .endpointSlice(let e): return e.validate()
        case .node(let n): return n.validate()
        }
    }
}
