import NetworkTypes

/// A problem with one field of an object: `spec.ports[0].port: must be between 1 and 65535, got 70000`.
public struct FieldError: Error, Sendable, Hashable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(_ field: String, _ message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

private func checkPort(_ value: Int, _ field: String, into errors: inout [FieldError]) {
    if !(1...65535).contains(value) {
        errors.append(FieldError(field, "must be between 1 and 65535, got \(value)"))
    }
}

private func checkIP(_ value: String, _ field: String, into errors: inout [FieldError]) {
    if IPAddress(value) == nil {
        errors.append(FieldError(field, "invalid IP address \"\(value)\""))
    }
}

private func checkName(_ meta: ObjectMeta, into errors: inout [FieldError]) {
    if meta.name.isEmpty { errors.append(FieldError("metadata.name", "must not be empty")) }
}

extension Service {
    /// Checks what kube-proxy relies on: addresses, ports, protocols, affinity, dual-stack consistency.
    public func validate() -> [FieldError] {
        var errors: [FieldError] = []
        checkName(metadata, into: &errors)
        let spec = self.spec
        if spec.effectiveType == .externalName {
            if (spec.externalName ?? "").isEmpty {
                errors.append(FieldError("spec.externalName", "required for type ExternalName"))
            }
            return errors
        }
        // Cluster IPs and families.
        if let ip = spec.clusterIP, ip != "None", !ip.isEmpty { checkIP(ip, "spec.clusterIP", into: &errors) }
        if let ips = spec.clusterIPs {
            if ips.count > 2 { errors.append(FieldError("spec.clusterIPs", "at most two addresses, got \(ips.count)")) }
            for (i, ip) in ips.enumerated() where !(ip == "None" && i == 0) && !ip.isEmpty {
                checkIP(ip, "spec.clusterIPs[\(i)]", into: &errors)
            }
            if let first = ips.first, let ip = spec.clusterIP, !ip.isEmpty, first != ip {
                errors.append(FieldError("spec.clusterIPs[0]", "must equal spec.clusterIP \"\(ip)\", got \"\(first)\""))
            }
            let families = ips.compactMap { IPAddress($0)?.family }
            if families.count == 2 && families[0] == families[1] {
                errors.append(FieldError("spec.clusterIPs", "a dual-stack service needs one IPv4 and one IPv6 address"))
            }
        }
        // Each declared family must match the address in its position (`clusterIPs`, or just
        // `clusterIP` when that is all there is). Invalid addresses were reported above.
        if let declared = spec.ipFamilies {
            let addresses = spec.clusterIPs ?? spec.clusterIP.map { [$0] } ?? []
            for (i, text) in addresses.enumerated() where i < declared.count {
                guard let family = IPAddress(text)?.family, family != declared[i] else { continue }
                let source = spec.clusterIPs == nil ? "spec.clusterIP" : "spec.clusterIPs[\(i)]"
                errors.append(FieldError("spec.ipFamilies[\(i)]",
                                         "is \(declared[i].rawValue) but \(source) is \(family.rawValue)"))
            }
        }
        if let fams = spec.ipFamilies, fams.count == 2, fams[0] == fams[1] {
            errors.append(FieldError("spec.ipFamilies", "may not repeat a family"))
        }
        // Ports.
        let ports = spec.ports ?? []
        if ports.isEmpty && !spec.isHeadless {
            errors.append(FieldError("spec.ports", "a service with a cluster IP needs at least one port"))
        }
        var names = Set<String>()
        for (i, p) in ports.enumerated() {
            let f = "spec.ports[\(i)]"
            checkPort(p.port, "\(f).port", into: &errors)
            if let np = p.nodePort, np != 0 { checkPort(np, "\(f).nodePort", into: &errors) }
            if case .int(let tp)? = p.targetPort { checkPort(tp, "\(f).targetPort", into: &errors) }
            if case .string(let tp)? = p.targetPort, tp.isEmpty {
                errors.append(FieldError("\(f).targetPort", "must not be empty"))
            }
            let name = p.name ?? ""
            if ports.count > 1 && name.isEmpty {
                errors.append(FieldError("\(f).name", "required when a service has more than one port"))
            } else if !names.insert(name).inserted {
                // As Kubernetes: a missing name is reported once, as missing, not also as a duplicate.
                errors.append(FieldError("\(f).name", "duplicate port name \"\(name)\""))
            }
        }
        for (i, ip) in (spec.externalIPs ?? []).enumerated() { checkIP(ip, "spec.externalIPs[\(i)]", into: &errors) }
        for (i, r) in (spec.loadBalancerSourceRanges ?? []).enumerated() where CIDR(r.trimmingCharacters()) == nil {
            errors.append(FieldError("spec.loadBalancerSourceRanges[\(i)]", "invalid CIDR \"\(r)\""))
        }
        if let lb = spec.loadBalancerIP, !lb.isEmpty { checkIP(lb, "spec.loadBalancerIP", into: &errors) }
        for (i, ing) in (status?.loadBalancer?.ingress ?? []).enumerated() {
            if let ip = ing.ip, !ip.isEmpty { checkIP(ip, "status.loadBalancer.ingress[\(i)].ip", into: &errors) }
        }
        if spec.sessionAffinity == .clientIP, let t = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds,
           !(1...86400).contains(t) {
            errors.append(FieldError("spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                                     "must be between 1 and 86400, got \(t)"))
        }
        if let hc = spec.healthCheckNodePort, hc != 0 { checkPort(hc, "spec.healthCheckNodePort", into: &errors) }
        return errors
    }
}

extension EndpointSlice {
    public func validate() -> [FieldError] {
        var errors: [FieldError] = []
        checkName(metadata, into: &errors)
        if serviceID == nil {
            errors.append(FieldError("metadata.labels[\(WellKnownLabels.serviceName)]",
                                     "required: the slice names no service"))
        }
        if let family = addressType.family {
            for (i, ep) in (endpoints ?? []).enumerated() {
                if ep.addresses.isEmpty {
                    errors.append(FieldError("endpoints[\(i)].addresses", "must not be empty"))
                }
                for (j, a) in ep.addresses.enumerated() {
                    let f = "endpoints[\(i)].addresses[\(j)]"
                    if let ip = IPAddress(a) {
                        if ip.family != family {
                            errors.append(FieldError(f, "\(a) is not an \(family.rawValue) address (addressType)"))
                        }
                    } else {
                        errors.append(FieldError(f, "invalid IP address \"\(a)\""))
                    }
                }
            }
        }
        var names = Set<String>()
        for (i, p) in (ports ?? []).enumerated() {
            if let port = p.port { checkPort(port, "ports[\(i)].port", into: &errors) }
            if !names.insert(p.name ?? "").inserted {
                errors.append(FieldError("ports[\(i)].name", "duplicate port name \"\(p.name ?? "")\""))
            }
        }
        return errors
    }
}

extension Node {
    public func validate() -> [FieldError] {
        var errors: [FieldError] = []
        checkName(metadata, into: &errors)
        return errors
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
