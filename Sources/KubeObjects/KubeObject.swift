/// One object of a kind kproxy reads. `indirect`: the object lives once on the heap and every
/// holder (the source's files and merged view, the controller) shares it through one pointer,
/// instead of each dictionary slot carrying a few hundred bytes of inline struct.
public indirect enum KubeObject: Sendable, Hashable {
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

    /// A 64-bit hash of everything kproxy keeps of the object. Sources remember fingerprints, not
    /// objects, to tell a changed object from an unchanged one: the controller digests each object
    /// as it arrives and the decoded form is freed (at 50k services the objects alone took 100 MB).
    /// Valid within one process (Swift's hash seed differs per process).
    public var fingerprint: Int { hashValue }

    /// Problems that make this object unusable (empty when it is valid).
    public func validate() -> [FieldError] {
        switch self {
        case .service(let s): return s.validate()
        case .endpointSlice(let e): return e.validate()
        case .node(let n): return n.validate()
        }
    }
}
