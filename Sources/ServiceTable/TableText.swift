import NetworkTypes

/// The service table as an operator reads it: columns in the style of `kubectl get`.
public enum TableText {
    /// One row per service port. `wide` adds affinity and policy columns and lists every endpoint
    /// under its service port with its conditions, node and zone; `*` marks the endpoints this
    /// node sends traffic to.
    public static func render(_ table: ServiceTable, wide: Bool = false) -> String {
        var header = ["SERVICE-PORT", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]
        if wide { header += ["AFFINITY", "EXT-POLICY", "INT-POLICY", "SOURCE-RANGES"] }
        header.append("ENDPOINTS")
        var rows: [[String]] = [header]
        var details: [Int: [String]] = [:]
        for entry in table.sortedEntries {
            var row = [
                entry.name.description,
                entry.type.rawValue,
                entry.clusterIPs.map(\.description).joined(separator: ","),
                externalColumn(entry),
                portsColumn(entry),
            ]
            if wide {
                row += [
                    entry.sessionAffinityTimeout.map { "ClientIP(\($0)s)" } ?? "None",
                    entry.isExternallyAccessible ? entry.externalTrafficPolicy.rawValue : "-",
                    entry.internalTrafficPolicy.rawValue,
                    entry.loadBalancerSourceRanges.isEmpty ? "-"
                        : entry.loadBalancerSourceRanges.map(\.description).joined(separator: ","),
                ]
            }
            row.append(endpointsColumn(entry, wide: wide))
            rows.append(row)
            if wide { details[rows.count - 1] = endpointLines(entry) }
        }
        return layout(rows, details: details)
    }

    static func externalColumn(_ e: ServicePortEntry) -> String {
        let ips = e.loadBalancerIPs + e.externalIPs
        return ips.isEmpty ? "<none>" : ips.map(\.description).joined(separator: ",")
    }

    static func portsColumn(_ e: ServicePortEntry) -> String {
        var s = "\(e.port)"
        if let np = e.nodePort { s += ":\(np)" }
        return s + "/\(e.protocol.rawValue)"
    }

    static func endpointsColumn(_ e: ServicePortEntry, wide: Bool) -> String {
        let used = e.usedEndpoints
        if e.endpoints.isEmpty { return "<none> (traffic rejected)" }
        if used.isEmpty { return "0/\(e.endpoints.count) usable (traffic rejected)" }
        let count = "\(used.count)/\(e.endpoints.count)"
        if wide { return count }
        let shown = used.prefix(3).map(\.description).joined(separator: ",")
        return used.count > 3 ? "\(count) \(shown) + \(used.count - 3) more" : "\(count) \(shown)"
    }

    static func endpointLines(_ e: ServicePortEntry) -> [String] {
        let cluster = Set(e.clusterEndpoints)
        let local = Set(e.localEndpoints)
        let rows: [[String]] = e.endpoints.map { ep in
            var uses: [String] = []
            if cluster.contains(ep) { uses.append("cluster") }
            if local.contains(ep) { uses.append("local") }
            return [
                (uses.isEmpty ? "  " : "* ") + ep.description,
                ep.conditionsDescription,
                "node=\(ep.nodeName ?? "-")" + (ep.isLocal ? "(this)" : ""),
                "zone=\(ep.zone ?? "-")",
                ep.zoneHints.isEmpty ? "" : "hints=\(ep.zoneHints.joined(separator: ","))",
                uses.isEmpty ? "unused" : "used:" + uses.joined(separator: "+"),
            ]
        }
        return layout(rows, details: [:]).split(separator: "\n").map { "    " + $0 }
    }

    /// Left-aligned columns separated by three spaces, like kubectl.
    static func layout(_ rows: [[String]], details: [Int: [String]]) -> String {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for (r, row) in rows.enumerated() {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += cell
                if i < row.count - 1 { line += String(repeating: " ", count: widths[i] - cell.count + 3) }
            }
            while line.last == " " { line.removeLast() }
            out += line + "\n"
            for d in details[r] ?? [] { out += d + "\n" }
        }
        return out
    }
}

/// The table as data, for `-o json` / `-o yaml`.
public struct TableDocument: Codable, Sendable {
    public var version: UInt64
    public var node: NodeInfo
    public var servicePorts: [ServicePortEntry]

    public init(_ table: ServiceTable) {
        version = table.version
        node = table.node
        servicePorts = table.sortedEntries
    }
}
