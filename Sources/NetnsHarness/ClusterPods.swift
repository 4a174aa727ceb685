#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NetworkTypes
import TestpodKit

/// Pods and clients: adding, removing, starting and stopping them.
extension Cluster {
    func addClient(_ spec: ClientSpec) throws {
        let k = lock.withLock { clientList.count }
        let ns = Namespace(prefix + "c\(k)-" + Self.sanitize(spec.name))
        try addNamespace(ns, router: false)
        let link = "ec\(k)"
        let (nodeMAC, clientMAC) = try addVeth(node, link, ns, "eth0", link: 0x100 + k)
        let v4 = spec.ipv4 ?? AddressPlan.clientIPv4(k)
        let v6 = AddressPlan.canonical(spec.ipv6 ?? AddressPlan.clientIPv6(k))
        let gw4 = AddressPlan.nodeSideIPv4(k), gw6 = AddressPlan.nodeSideIPv6(k)
        try ip(node, "link", "set", link, "up")
        try ip(ns, "link", "set", "eth0", "up")
        for (f, address, gateway, length) in [("-4", v4, gw4, "/32"), ("-6", v6, gw6, "/128")] {
            try ip(node, [f, "addr", "add", gateway + length, "dev", link] + (f == "-6" ? ["nodad"] : []))
            try ip(ns, [f, "addr", "add", address + length, "dev", "eth0"] + (f == "-6" ? ["nodad"] : []))
            try ip(ns, f, "route", "add", gateway, "dev", "eth0")
            try ip(ns, f, "route", "add", "default", "via", gateway, "dev", "eth0")
            try ip(node, f, "route", "add", address + length, "dev", link)
            try pinNeighbors(node, link, [address], clientMAC)
            try pinNeighbors(ns, "eth0", [gateway], nodeMAC)
        }
        let client = Client(name: spec.name, namespace: ns, ipv4: v4, ipv6: v6,
                            nodeSideIPv4: gw4, nodeSideIPv6: gw6, hostInterface: link)
        lock.withLock { clientList.append(client) }
    }

    /// Clients, in creation order.
    public var clients: [Client] { lock.withLock { clientList } }

    /// The client called `name` (the first client when not given).
    public func client(_ name: String? = nil) -> Client {
        lock.withLock {
            guard let c = name.map({ n in clientList.first { $0.name == n } }) ?? clientList.first else {
                preconditionFailure("no client \(name ?? "") in this cluster")
            }
            return c
        }
    }

    /// Pods, in creation order.
    public var pods: [Pod] { lock.withLock { podOrder.compactMap { podTable[$0] } } }

    /// The pod called `name`.
    public func pod(_ name: String) -> Pod {
        lock.withLock {
            guard let p = podTable[name] else { preconditionFailure("no pod \(name) in this cluster") }
            return p
        }
    }

    /// Adds a pod on its node: a namespace, a veth into the node (or remote node) with the pod's
    /// /32 and /128 routes, and, unless told not to, `testpod serve` answering on its ports.
    @discardableResult
    public func addPod(_ spec: PodSpec) throws -> Pod {
        let (ifname, ipv4, ipv6): (String, String?, String?) = try lock.withLock {
            guard podTable[spec.name] == nil else { throw HarnessError("pod \(spec.name) exists already") }
            interfaceCounter += 1
            // Automatic addresses: both families share the host number (10.244.1.12 / fd00:10:244:1::c).
            let used = Set(podTable.values.flatMap(\.ips))
            let p = spec.placement
            var n = addressCounters[p]!
            if spec.ipv4 == nil || spec.ipv6 == nil {
                while used.contains(AddressPlan.podAddress(p, .ipv4, n)) || used.contains(AddressPlan.podAddress(p, .ipv6, n)) {
                    n += 1
                }
                addressCounters[p] = n + 1
            }
            let v4 = spec.families.contains(.ipv4) ? (spec.ipv4 ?? AddressPlan.podAddress(p, .ipv4, n)) : nil
            let v6 = spec.families.contains(.ipv6)
                ? (spec.ipv6.map(AddressPlan.canonical) ?? AddressPlan.podAddress(p, .ipv6, n)) : nil
            return ("vp\(interfaceCounter)", v4, v6)
        }
        let ns = Namespace(prefix + "p" + ifname.dropFirst(2) + "-" + Self.sanitize(spec.name))
        let host = spec.placement == .local ? node : remoteNode
        try addNamespace(ns, router: false)
        let linkID = 0x200 + Int(ifname.dropFirst(2))!
        let (hostMAC, podMAC) = try addVeth(host, ifname, ns, "eth0", link: linkID)
        try ip(host, "addr", "add", AddressPlan.podGateway(spec.placement, .ipv4) + "/32", "dev", ifname)
        try ip(host, "addr", "add", AddressPlan.podGateway(spec.placement, .ipv6) + "/128", "dev", ifname, "nodad")
        try ip(host, "link", "set", ifname, "up")
        try ip(ns, "link", "set", "eth0", "up")
        for (family, address) in [(IPFamily.ipv4, ipv4), (.ipv6, ipv6)] {
            guard let address else { continue }
            let f = family == .ipv4 ? "-4" : "-6"
            let gateway = AddressPlan.podGateway(spec.placement, family)
            let hostLength = family == .ipv4 ? "/32" : "/128"
            try ip(ns, [f, "addr", "add", address + hostLength, "dev", "eth0"] + (family == .ipv6 ? ["nodad"] : []))
            try ip(ns, f, "route", "add", gateway, "dev", "eth0")
            try ip(ns, f, "route", "add", "default", "via", gateway, "dev", "eth0")
            try ip(host, f, "route", "add", address + hostLength, "dev", ifname)
            try pinNeighbors(host, ifname, [address], podMAC)
            try pinNeighbors(ns, "eth0", [gateway], hostMAC)
            if spec.placement == .remote {
                let via = family == .ipv4 ? AddressPlan.remoteNodeIPv4 : AddressPlan.remoteNodeIPv6
                try ip(node, f, "route", "add", address + hostLength, "via", via)
            }
        }
        let pod = Pod(name: spec.name, namespace: ns, placement: spec.placement, ipv4: ipv4, ipv6: ipv6,
                      tcp: spec.tcp, udp: spec.udp, sctp: spec.sctp, hostInterface: ifname)
        lock.withLock {
            podTable[spec.name] = pod
            podOrder.append(spec.name)
        }
        if spec.start { try startPod(name: spec.name) }
        return pod
    }

    /// Stops a pod's server and deletes its namespace (its veth and the routes to it go too).
    public func removePod(name: String) throws {
        let pod = self.pod(name)
        stopPod(name: name)
        if pod.placement == .remote {
            for address in pod.ips {
                let f = address.contains(":") ? "-6" : "-4"
                _ = try? ip(node, check: false, [f, "route", "del", address + (f == "-6" ? "/128" : "/32")])
            }
        }
        try Shell.run(["ip", "netns", "del", pod.namespace.name])
        lock.withLock {
            podTable[name] = nil
            podOrder.removeAll { $0 == name }
            namespaces.removeAll { $0 == pod.namespace }
        }
    }

    /// Starts `testpod serve` in the pod (no-op if it runs) and waits until every port listens.
    public func startPod(name: String) throws {
        let pod = self.pod(name)
        if let running = lock.withLock({ podProcesses[name] }), running.isRunning { return }
        let tag = pod.namespace.name.dropFirst(prefix.count)  // p<N>-<name>: unique, short
        let ready = "\(workDir)/\(tag).ready"
        try? FileManager.default.removeItem(atPath: ready)
        var args = [testpodPath, "serve", "--name", name, "--ready-file", ready]
        if !pod.tcp.isEmpty { args += ["--tcp", pod.tcp.map(String.init).joined(separator: ",")] }
        if !pod.udp.isEmpty { args += ["--udp", pod.udp.map(String.init).joined(separator: ",")] }
        if !pod.sctp.isEmpty { args += ["--sctp", pod.sctp.map(String.init).joined(separator: ",")] }
        let child = try ChildProcess(label: "pod \(name)", arguments: ["ip", "netns", "exec", pod.namespace.name] + args,
                                     logPath: "\(workDir)/\(tag).log")
        lock.withLock { podProcesses[name] = child }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: ready) {
            if !child.isRunning {
                throw HarnessError("pod \(name) exited at start (status \(child.stop())):\n\(child.output)")
            }
            if Date() > deadline {
                throw HarnessError("pod \(name) not listening after 10 s:\n\(child.output)")
            }
            usleep(5_000)
        }
    }

    /// Stops the pod's server: its address stays, so connections are refused (a pod that is down).
    public func stopPod(name: String) {
        let child = lock.withLock { podProcesses.removeValue(forKey: name) }
        child?.stop(grace: 2)
    }
}
