import HashTreeCollections
import KubeObjects
import NetworkTypes
import ServiceTable

/// Turns Services, EndpointSlices and this node's Node into the service table, incrementally:
/// each event marks the services it touches, and `build()` recomputes only those, so a change to
/// one service costs work in proportion to that service, not to the table.
///
/// The decoded objects are not kept. A Service becomes its port templates, which are its table
/// entries themselves (everything but the endpoints comes from the Service alone); an EndpointSlice
/// becomes a `SliceDigest`: its endpoints per port, already in the table's form and sorted, so a
/// service port fed by one slice shares that slice's endpoint array with the table.
public struct TableBuilder: Sendable {
    public let nodeName: String
    public private(set) var table: ServiceTable

    /// What the builder remembers of one service (or of slices that name it before it exists).
    private struct ServiceState {
        /// Its entries in `table`.
        var ports: [ServicePortName] = []
        /// Its slices, sorted by name.
        var slices: [SliceDigest] = []
        var isEmpty: Bool { ports.isEmpty && slices.isEmpty }
    }

    private var services: [NamespacedName: ServiceState] = [:]
    /// The service each slice belongs to (same namespace), for deletes that carry only the slice's name.
    private var sliceOwners: [NamespacedName: String] = [:]
    /// Services whose Service changed since the last build: their new port templates, empty when the
    /// Service was deleted or gets no entries.
    private var pendingTemplates: [NamespacedName: [ServicePortEntry]] = [:]
    private var dirty: Set<NamespacedName> = []
    private var node: Node?
    private var nodeDirty = false
    /// One shared `EndpointTopology` per distinct node, zone and hints.
    private var topologies: [TopologyKey: EndpointTopology] = [:]

    private struct TopologyKey: Hashable {
        var nodeName: String?
        var zone: String?
        var zoneHints: [String]
    }

    public init(nodeName: String) {
        self.nodeName = nodeName
        self.table = .empty(node: NodeInfo(name: nodeName))
    }

    /// Whether `build()` has anything to do.
    public var hasPendingChanges: Bool { !dirty.isEmpty || nodeDirty }

    /// Records one change. An invalid object is refused (its last valid version stays in force)
    /// and the problems are returned for the caller to report.
    @discardableResult
    public mutating func apply(_ event: ObjectEvent) -> [FieldError] {
        switch event {
        case .upsert(let object):
            let problems = object.validate()
            guard problems.isEmpty else { return problems }
            switch object {
            case .service(let svc):
                pendingTemplates[svc.id] = Self.shouldSkip(svc) ? [] : Self.makeTemplates(svc)
                dirty.insert(svc.id)
            case .endpointSlice(let slice):
                removeSlice(slice.id)
                if let owner = slice.serviceID {
                    let digest = digest(slice)
                    services[owner, default: ServiceState()].slices.insertSorted(digest)
                    sliceOwners[slice.id] = owner.name
                    dirty.insert(owner)
                }
            case .node(let n):
                guard n.metadata.name == nodeName else { return [] }
                let zoneChanged = n.zone != node?.zone
                node = n
                nodeDirty = true
                // The zone steers topology hints for every service.
                if zoneChanged { dirty.formUnion(services.keys) }
            }
        case .delete(let id):
            switch id.kind {
            case .service:
                pendingTemplates[id.name] = []
                dirty.insert(id.name)
            case .endpointSlice:
                removeSlice(id.name)
            case .node:
                guard id.name.name == nodeName, node != nil else { return [] }
                let hadZone = node?.zone != nil
                node = nil
                nodeDirty = true
                if hadZone { dirty.formUnion(services.keys) }
            }
        }
        return []
    }

    private mutating func removeSlice(_ id: NamespacedName) {
        guard let ownerName = sliceOwners.removeValue(forKey: id) else { return }
        let owner = NamespacedName(namespace: id.namespace, name: ownerName)
        services[owner]?.slices.removeAll { $0.name == id.name }
        if services[owner]?.isEmpty == true { services[owner] = nil }
        dirty.insert(owner)
    }

    /// Produces the next table version and what changed since the previous one. When nothing
    /// changed, returns the same table and an empty diff.
    public mutating func build() -> (table: ServiceTable, diff: TableDiff) {
        guard hasPendingChanges else { return (table, TableDiff()) }
        var entries = table.entries
        var diff = TableDiff()
        let nodeInfo = makeNodeInfo()
        for svc in dirty {
            var state = services[svc] ?? ServiceState()
            let templates = pendingTemplates[svc] ?? state.ports.compactMap { entries[$0] }
            let fresh = templates.map { fill($0, from: state.slices, zone: nodeInfo.zone) }
            if !state.ports.isEmpty {
                let freshNames = Set(fresh.map(\.name))
                for old in state.ports where !freshNames.contains(old) {
                    entries[old] = nil
                    diff.removed.insert(old)
                }
            }
            for entry in fresh {
                if let before = entries[entry.name] {
                    if before != entry { diff.changed.insert(entry.name) }
                } else {
                    diff.added.insert(entry.name)
                }
                entries[entry.name] = entry
            }
            state.ports = fresh.map(\.name)
            services[svc] = state.isEmpty ? nil : state
        }
        dirty = []
        pendingTemplates.removeAll()
        nodeDirty = false
        if !diff.isEmpty || nodeInfo != table.node {
            table = ServiceTable(version: table.version + 1, node: nodeInfo, entries: entries)
        }
        return (table, diff)
    }

    private func makeNodeInfo() -> NodeInfo {
        let addresses = (node?.status?.addresses ?? [])
            .filter { $0.type == "InternalIP" || $0.type == "ExternalIP" }
            .compactMap { IPAddress($0.address) }
        return NodeInfo(name: nodeName, zone: node?.zone, addresses: addresses)
    }

    /// kube-proxy skips services that have no cluster IP to program, and those another proxy owns.
    static func shouldSkip(_ svc: Service) -> Bool { skipReason(svc) != nil }

    /// Why a service gets no table entries, or nil when it gets them.
    public static func skipReason(_ svc: Service) -> String? {
        let spec = svc.spec
        if spec.effectiveType == .externalName { return "ExternalName service" }
        if spec.isHeadless { return "headless service" }
        if let owner = svc.metadata.labels?[WellKnownLabels.serviceProxyName], !owner.isEmpty {
            return "handled by proxy \"\(owner)\" (\(WellKnownLabels.serviceProxyName))"
        }
        if spec.allClusterIPs.isEmpty { return "no cluster IP (spec.clusterIP is empty; the API server allocates one)" }
        return nil
    }

    /// The entries of one service without their endpoints: one per port, everything the Service
    /// itself says.
    static func makeTemplates(_ svc: Service) -> [ServicePortEntry] {
        let spec = svc.spec
        let clusterIPs = spec.allClusterIPs.compactMap { IPAddress($0) }
        let families = Set(clusterIPs.map(\.family))
        let kind: ServiceKind = switch spec.effectiveType {
        case .loadBalancer: .loadBalancer
        case .nodePort: .nodePort
        default: .clusterIP
        }
        let externalIPs = Array(Set((spec.externalIPs ?? []).compactMap { IPAddress($0) }))
            .filter { families.contains($0.family) }.sorted()
        let lbIPs: [IPAddress] = kind == .loadBalancer
            ? Array(Set((svc.status?.loadBalancer?.ingress ?? [])
                .filter { $0.ipMode != "Proxy" }
                .compactMap { $0.ip.flatMap { IPAddress($0) } }))
                .filter { families.contains($0.family) }.sorted()
            : []
        let sourceRanges = kind == .loadBalancer
            ? (spec.loadBalancerSourceRanges ?? []).compactMap { CIDR($0.trimmingCharacters()) }.sorted()
            : []
        let affinity: Int? = spec.sessionAffinity == .clientIP
            ? (spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? ClientIPConfig.defaultTimeoutSeconds)
            : nil
        let id = svc.id
        return (spec.ports ?? []).map { sp in
            let name = ServicePortName(namespace: id.namespace, name: id.name, port: sp.name ?? "",
                                       protocol: sp.effectiveProtocol)
            let nodePort: UInt16? = kind != .clusterIP ? sp.nodePort.flatMap { $0 > 0 ? UInt16($0) : nil } : nil
            var entry = ServicePortEntry(
                name: name, type: kind, clusterIPs: clusterIPs, port: UInt16(sp.port), nodePort: nodePort,
                externalIPs: externalIPs, loadBalancerIPs: lbIPs, loadBalancerSourceRanges: sourceRanges,
                sessionAffinityTimeout: affinity,
                externalTrafficPolicy: spec.externalTrafficPolicy == .local ? .local : .cluster,
                internalTrafficPolicy: spec.internalTrafficPolicy == .local ? .local : .cluster,
                trafficDistribution: spec.trafficDistribution)
            if kind == .loadBalancer, entry.externalPolicyIsLocal, let hc = spec.healthCheckNodePort, hc > 0 {
                entry.healthCheckNodePort = UInt16(hc)
            }
            return entry
        }
    }

    /// One service port's template with its endpoints selected for this node.
    func fill(_ template: ServicePortEntry, from slices: [SliceDigest], zone: String?) -> ServicePortEntry {
        var entry = template
        let families = Set(entry.clusterIPs.map(\.family))
        entry.endpoints = Self.collectEndpoints(for: entry.name, from: slices, families: families)
        entry.clusterEndpoints = []
        entry.localEndpoints = []
        let policies = EndpointSelection.Policies(
            internalLocal: entry.internalPolicyIsLocal, externalLocal: entry.externalPolicyIsLocal,
            externallyAccessible: entry.isExternallyAccessible)
        for family in IPFamily.allCases where families.contains(family) {
            let selected = EndpointSelection.categorize(entry.endpoints.of(family), policies: policies, zone: zone)
            entry.clusterEndpoints += selected.cluster
            entry.localEndpoints += selected.local
        }
        // Usually all three lists are the same: let them share one array buffer (copy on write).
        if entry.clusterEndpoints == entry.endpoints { entry.clusterEndpoints = entry.endpoints }
        if entry.localEndpoints == entry.clusterEndpoints { entry.localEndpoints = entry.clusterEndpoints }
        else if entry.localEndpoints == entry.endpoints { entry.localEndpoints = entry.endpoints }
        return entry
    }

    /// Endpoints of one service port from every slice of its service, matched by port name and
    /// protocol, deduplicated by ip:port (a local copy wins, as in kube-proxy). A port fed by one
    /// slice gets that slice's array itself.
    static func collectEndpoints(for name: ServicePortName, from slices: [SliceDigest],
                                 families: Set<IPFamily>) -> [Endpoint] {
        var lists: [[Endpoint]] = []
        for slice in slices {
            guard let family = slice.family, families.contains(family) else { continue }
            for port in slice.ports where port.name == name.port && port.protocol == name.protocol {
                lists.append(port.endpoints)
            }
        }
        if lists.count == 1 { return lists[0] }
        return SliceDigest.deduplicated(lists.joined())
    }

    /// A slice reduced to what the table needs, with endpoint topologies shared.
    private mutating func digest(_ slice: EndpointSlice) -> SliceDigest {
        guard let family = slice.addressType.family else {
            return SliceDigest(name: slice.metadata.name, family: nil, ports: [])
        }
        let base: [Endpoint] = (slice.endpoints ?? []).compactMap { ep in
            guard let first = ep.addresses.first, let ip = IPAddress(first) else { return nil }
            let node = ep.effectiveNodeName
            return Endpoint(ip: ip, port: 0, ready: ep.isReady, serving: ep.isServing, terminating: ep.isTerminating,
                            topology: topology(node, ep.effectiveZone, (ep.hints?.forZones ?? []).map(\.name).sorted()),
                            isLocal: node == nodeName)
        }
        var ports: [SliceDigest.Port] = []
        for port in slice.ports ?? [] {
            guard let number = port.port, (1...65535).contains(number) else { continue }
            let name = port.name ?? "", proto = port.protocol ?? .tcp
            let endpoints = base.map { ep in var e = ep; e.port = UInt16(number); return e }
            if let i = ports.firstIndex(where: { $0.name == name && $0.protocol == proto }) {
                ports[i].endpoints += endpoints
            } else {
                ports.append(SliceDigest.Port(name: name, protocol: proto, endpoints: endpoints))
            }
        }
        for i in ports.indices { ports[i].endpoints = SliceDigest.deduplicated(ports[i].endpoints) }
        return SliceDigest(name: slice.metadata.name, family: family, ports: ports)
    }

    private mutating func topology(_ node: String?, _ zone: String?, _ hints: [String]) -> EndpointTopology? {
        if node == nil && zone == nil && hints.isEmpty { return nil }
        let key = TopologyKey(nodeName: node, zone: zone, zoneHints: hints)
        if let known = topologies[key] { return known }
        let fresh = EndpointTopology(nodeName: node, zone: zone, zoneHints: hints)
        topologies[key] = fresh
        return fresh
    }
}

/// What the builder keeps of one EndpointSlice: per port (name and protocol), its endpoints in the
/// table's form, sorted and deduplicated.
struct SliceDigest: Sendable {
    struct Port: Sendable {
        var name: String
        var `protocol`: L4Protocol
        var endpoints: [Endpoint]
    }

    var name: String
    /// nil for FQDN slices, which kube-proxy ignores.
    var family: IPFamily?
    var ports: [Port]

    private struct Address: Hashable { var ip: IPAddress; var port: UInt16 }

    /// Sorted by ip:port, one endpoint per ip:port: the first seen, unless a later one is local.
    static func deduplicated(_ endpoints: some Sequence<Endpoint>) -> [Endpoint] {
        let list = Array(endpoints)
        // The usual case: already in order, nothing twice.
        if zip(list, list.dropFirst()).allSatisfy({ $0 < $1 }) { return list }
        var byAddress: [Address: Endpoint] = [:]
        for e in list {
            let key = Address(ip: e.ip, port: e.port)
            if byAddress[key] == nil || e.isLocal { byAddress[key] = e }
        }
        return byAddress.values.sorted()
    }
}

extension Array where Element == SliceDigest {
    /// Inserts keeping the array sorted by slice name.
    mutating func insertSorted(_ digest: SliceDigest) {
        let i = firstIndex { $0.name > digest.name } ?? endIndex
        insert(digest, at: i)
    }
}

extension String {
    func trimmingCharacters() -> Substring {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return s
    }
}
