import HashTreeCollections
import KubeObjects
import NetworkTypes
import ServiceTable

/// Turns Services, EndpointSlices and this node's Node into the service table, incrementally:
/// each event marks the services it touches, and `build()` recomputes only those, so a change to
/// one service costs work in proportion to that service, not to the table.
public struct TableBuilder: Sendable {
    public let nodeName: String
    public private(set) var table: ServiceTable

    /// Kept as the shared `KubeObject` the source decoded (one pointer per entry, no copy).
    private var services: [NamespacedName: KubeObject] = [:]
    private var slices: [NamespacedName: KubeObject] = [:]
    private var slicesByService: [NamespacedName: Set<NamespacedName>] = [:]
    private var node: Node?
    private var portsByService: [NamespacedName: [ServicePortName]] = [:]
    private var dirty: Set<NamespacedName> = []
    private var nodeDirty = false

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
                services[svc.id] = object
                dirty.insert(svc.id)
            case .endpointSlice(let slice):
                removeSlice(slice.id)
                slices[slice.id] = object
                if let owner = slice.serviceID {
                    slicesByService[owner, default: []].insert(slice.id)
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
                if services.removeValue(forKey: id.name) != nil { dirty.insert(id.name) }
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
        guard case .endpointSlice(let old)? = slices.removeValue(forKey: id), let owner = old.serviceID else { return }
        slicesByService[owner]?.remove(id)
        if slicesByService[owner]?.isEmpty == true { slicesByService[owner] = nil }
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
            let fresh = makeEntries(for: svc, zone: nodeInfo.zone)
            let freshNames = Set(fresh.map(\.name))
            for old in portsByService[svc] ?? [] where !freshNames.contains(old) {
                entries[old] = nil
                diff.removed.insert(old)
            }
            for entry in fresh {
                if let before = entries[entry.name] {
                    if before != entry { diff.changed.insert(entry.name) }
                } else {
                    diff.added.insert(entry.name)
                }
                entries[entry.name] = entry
            }
            portsByService[svc] = fresh.isEmpty ? nil : fresh.map(\.name)
        }
        dirty.removeAll(keepingCapacity: true)
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

    /// The table entries of one service: one per port, with its endpoints selected for this node.
    func makeEntries(for id: NamespacedName, zone: String?) -> [ServicePortEntry] {
        guard case .service(let svc)? = services[id], !Self.shouldSkip(svc) else { return [] }
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
        let sliceList = (slicesByService[id] ?? []).compactMap { id -> EndpointSlice? in
            if case .endpointSlice(let slice)? = slices[id] { return slice }
            return nil
        }.sorted { $0.metadata.name < $1.metadata.name }

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
            entry.endpoints = collectEndpoints(for: name, from: sliceList, families: families)
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
    }

    /// Endpoints of one service port from every slice of its service, matched by port name and
    /// protocol, deduplicated by ip:port (a local copy wins, as in kube-proxy).
    func collectEndpoints(for name: ServicePortName, from slices: [EndpointSlice],
                          families: Set<IPFamily>) -> [Endpoint] {
        struct Address: Hashable { var ip: IPAddress; var port: UInt16 }
        var byAddress: [Address: Endpoint] = [:]
        for slice in slices {
            guard let family = slice.addressType.family, families.contains(family) else { continue }
            for port in slice.ports ?? [] {
                guard (port.name ?? "") == name.port, (port.protocol ?? .tcp) == name.protocol,
                      let number = port.port, (1...65535).contains(number) else { continue }
                for ep in slice.endpoints ?? [] {
                    guard let first = ep.addresses.first, let ip = IPAddress(first) else { continue }
                    let isLocal = ep.effectiveNodeName == nodeName
                    let e = Endpoint(ip: ip, port: UInt16(number), ready: ep.isReady, serving: ep.isServing,
                                     terminating: ep.isTerminating, nodeName: ep.effectiveNodeName,
                                     zone: ep.effectiveZone,
                                     zoneHints: (ep.hints?.forZones ?? []).map(\.name).sorted(), isLocal: isLocal)
                    let key = Address(ip: ip, port: UInt16(number))
                    if byAddress[key] == nil || isLocal { byAddress[key] = e }
                }
            }
        }
        return byAddress.values.sorted()
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
