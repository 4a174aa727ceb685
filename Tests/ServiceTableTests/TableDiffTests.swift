import Testing
import NetworkTypes
@testable import ServiceTable

struct TableDiffTests {
    func name(_ n: String) -> ServicePortName { ServicePortName(namespace: "ns", name: n, port: "", protocol: .tcp) }
    func entry(_ n: String, port: UInt16 = 80) -> ServicePortEntry {
        ServicePortEntry(name: name(n), clusterIPs: [IPAddress("10.96.0.1")!], port: port)
    }
    let node = NodeInfo(name: "node-a")

    @Test func betweenFindsAddedRemovedAndChanged() {
        let old = ServiceTable(node: node, entries: [entry("a"), entry("b"), entry("c")])
        let new = ServiceTable(version: 2, node: node, entries: [entry("a"), entry("b", port: 81), entry("d")])
        let diff = TableDiff.between(old, new)
        #expect(diff.added == [name("d")])
        #expect(diff.removed == [name("c")])
        #expect(diff.changed == [name("b")])
        #expect(TableDiff.between(new, new).isEmpty)
    }

    @Test(arguments: [
        // (first, second, net)
        ("added then removed", TableDiff(added: ["x"]), TableDiff(removed: ["x"]), TableDiff()),
        ("removed then added", TableDiff(removed: ["x"]), TableDiff(added: ["x"]), TableDiff(changed: ["x"])),
        ("added then changed", TableDiff(added: ["x"]), TableDiff(changed: ["x"]), TableDiff(added: ["x"])),
        ("changed then removed", TableDiff(changed: ["x"]), TableDiff(removed: ["x"]), TableDiff(removed: ["x"])),
        ("independent", TableDiff(added: ["x"]), TableDiff(removed: ["y"]), TableDiff(added: ["x"], removed: ["y"])),
    ] as [(String, TableDiff, TableDiff, TableDiff)])
    func followedByComposesNetChange(_ label: String, _ a: TableDiff, _ b: TableDiff, _ net: TableDiff) {
        #expect(a.followed(by: b) == net, "\(label)")
    }

    @Test func tableTextMarksUsedEndpointsAndRejection() {
        var e = entry("web")
        let used = Endpoint(ip: IPAddress("10.244.1.2")!, port: 8080, nodeName: "node-a", isLocal: true)
        let unused = Endpoint(ip: IPAddress("10.244.2.2")!, port: 8080, ready: false, serving: true, terminating: true)
        e.endpoints = [used, unused]
        e.clusterEndpoints = [used]
        let empty = entry("none")
        let text = TableText.render(ServiceTable(node: node, entries: [e, empty]), wide: true)
        #expect(text.contains("* 10.244.1.2:8080"))
        #expect(text.contains("  10.244.2.2:8080   serving,terminating"))
        #expect(text.contains("<none> (traffic rejected)"))
        let lines = TableText.render(ServiceTable(node: node, entries: [e, empty])).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("SERVICE-PORT"))
    }
}

extension ServicePortName: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) {
        self.init(namespace: "ns", name: value, port: "", protocol: .tcp)
    }
}
