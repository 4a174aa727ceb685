import Foundation
import Testing
import KubeObjects
@testable import ObjectSources

/// The manifest folder as a source: file creates, edits and deletes become object events.
struct ManifestSourceTests {
    let dir: String

    init() throws {
        dir = NSTemporaryDirectory() + "kproxy-manifests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
    }

    func service(_ name: String, ip: String, port: Int = 80) -> String {
        """
        apiVersion: v1
        kind: Service
        metadata:
          name: \(name)
          namespace: default
        spec:
          clusterIP: \(ip)
          ports:
          - name: http
            port: \(port)
        """
    }

    func names(_ events: [ObjectEvent]) -> [String] {
        events.map { e in
            switch e {
            case .upsert(let o): return "+\(o.id)"
            case .delete(let id): return "-\(id)"
            }
        }
    }

    @Test func createsEditsAndDeletesBecomeEvents() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("a.yaml", service("web", ip: "10.96.0.10") + "\n---\n" + service("api", ip: "10.96.0.11"))
        let source = ManifestSource(directory: dir)
        #expect(names(source.rescan()) == ["+Service default/api", "+Service default/web"])
        #expect(source.rescan().isEmpty, "nothing changed, nothing reported")

        try write("a.yaml", service("web", ip: "10.96.0.10", port: 81) + "\n---\n" + service("api", ip: "10.96.0.11"))
        let edit = source.rescan()
        #expect(names(edit) == ["+Service default/web"])
        if case .upsert(.service(let s)) = edit.first { #expect(s.spec.ports?.first?.port == 81) }

        try write("b.json", #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"db"},"spec":{"clusterIP":"10.96.0.12","ports":[{"port":5432}]}}"#)
        #expect(names(source.rescan()) == ["+Service default/db"])

        try FileManager.default.removeItem(atPath: dir + "/a.yaml")
        #expect(names(source.rescan()) == ["-Service default/api", "-Service default/web"])
    }

    @Test func aFileThatStopsParsingKeepsItsLastGoodObjects() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("a.yaml", service("web", ip: "10.96.0.10"))
        let source = ManifestSource(directory: dir)
        #expect(source.rescan().count == 1)
        try write("a.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n spec: [\n")
        #expect(source.rescan().isEmpty, "a syntax error withdraws nothing")
        let problem = try #require(source.problems.first)
        #expect(problem.file == dir + "/a.yaml")
        #expect(problem.line == 5)
        #expect(source.objectIDs.count == 1)
        // Fixed again: the change is picked up, the problem is gone.
        try write("a.yaml", service("web", ip: "10.96.0.10", port: 8080))
        #expect(source.rescan().count == 1)
        #expect(source.problems.isEmpty)
    }

    @Test func anObjectThatBecomesInvalidKeepsItsLastValidVersionOthersUpdate() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("a.yaml", service("web", ip: "10.96.0.10") + "\n---\n" + service("api", ip: "10.96.0.11"))
        let source = ManifestSource(directory: dir)
        _ = source.rescan()
        try write("a.yaml", service("web", ip: "10.96.0.999") + "\n---\n" + service("api", ip: "10.96.0.11", port: 90))
        #expect(names(source.rescan()) == ["+Service default/api"])
        let problem = try #require(source.problems.first)
        #expect(problem.object == "Service default/web")
        #expect(problem.field == "spec.clusterIP")
        #expect(problem.line == 7)
    }

    @Test func firstFileWinsWhenTwoDefineTheSameObject() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("a.yaml", service("web", ip: "10.96.0.10"))
        try write("b.yaml", service("web", ip: "10.96.0.20"))
        let source = ManifestSource(directory: dir)
        let events = source.rescan()
        #expect(events.count == 1)
        if case .upsert(.service(let s)) = events.first { #expect(s.spec.clusterIP == "10.96.0.10") }
        // Removing the winner lets the other definition take over.
        try FileManager.default.removeItem(atPath: dir + "/a.yaml")
        let next = source.rescan()
        if case .upsert(.service(let s)) = next.first { #expect(s.spec.clusterIP == "10.96.0.20") } else {
            Issue.record("expected the second definition, got \(next)")
        }
    }

    @Test func amongManyFilesTheEarliestDefinitionWinsAndTheNextTakesOver() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Files 1, 3 and 4 define "web"; the others hold other services.
        for i in 0..<6 {
            let name = [1, 3, 4].contains(i) ? "web" : "svc\(i)"
            try write("f\(i).yaml", service(name, ip: "10.96.0.\(10 + i)"))
        }
        let source = ManifestSource(directory: dir)
        let first = source.rescan()
        #expect(first.count == 4)
        let web = first.compactMap { e -> String? in
            if case .upsert(.service(let s)) = e, s.metadata.name == "web" { return s.spec.clusterIP }
            return nil
        }
        #expect(web == ["10.96.0.11"])
        try FileManager.default.removeItem(atPath: dir + "/f1.yaml")
        let next = source.rescan()
        guard case .upsert(.service(let s))? = next.first, next.count == 1 else {
            Issue.record("expected f3's definition, got \(next)")
            return
        }
        #expect(s.spec.clusterIP == "10.96.0.13")
        #expect(source.objectIDs.count == 4)
    }

    /// The source keeps fingerprints, not objects: a definition that takes over is read from its
    /// file again, and when that file no longer parses there is nothing to hand over.
    @Test func aTakeOverFromAFileThatNoLongerParsesRemovesTheObjectUntilItIsFixed() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("a.yaml", service("web", ip: "10.96.0.10"))
        try write("b.yaml", service("web", ip: "10.96.0.20"))
        let source = ManifestSource(directory: dir)
        #expect(names(source.rescan()) == ["+Service default/web"])
        try write("b.yaml", "kind: Service\nmetadata: [\n")
        #expect(source.rescan().isEmpty, "b's last good version is shadowed by a's")
        try FileManager.default.removeItem(atPath: dir + "/a.yaml")
        #expect(names(source.rescan()) == ["-Service default/web"])
        #expect(source.objectIDs.isEmpty)
        try write("b.yaml", service("web", ip: "10.96.0.20"))
        let fixed = source.rescan()
        guard case .upsert(.service(let s))? = fixed.first, fixed.count == 1 else {
            Issue.record("expected b's definition, got \(fixed)")
            return
        }
        #expect(s.spec.clusterIP == "10.96.0.20")
    }

    @Test func unchangedFilesGiveNoEvents() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("a.yaml", service("web", ip: "10.96.0.10"))
        let source = ManifestSource(directory: dir)
        #expect(source.rescan().count == 1)
        #expect(source.rescan().isEmpty)
        // Rewritten with the same content: read again, but nothing to report.
        try write("a.yaml", service("web", ip: "10.96.0.10") + "\n")
        #expect(source.rescan().isEmpty)
    }

    @Test func hiddenFilesAndOtherExtensionsAreIgnoredSubfoldersAreRead() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write(".web.yaml.swp", service("swap", ip: "10.96.0.10"))
        try write("notes.txt", service("txt", ip: "10.96.0.11"))
        try FileManager.default.createDirectory(atPath: dir + "/team", withIntermediateDirectories: true)
        try write("team/svc.yml", service("nested", ip: "10.96.0.12"))
        #expect(names(ManifestSource(directory: dir).rescan()) == ["+Service default/nested"])
    }

    @Test func watchReportsTheInitialObjectsThenEachChange() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("a.yaml", service("web", ip: "10.96.0.10"))
        let source = ManifestSource(directory: dir)
        // A long poll interval: changes must arrive through inotify.
        let stream = source.watch(pollInterval: .seconds(30))
        var iterator = stream.makeAsyncIterator()
        #expect(names(await iterator.next() ?? []) == ["+Service default/web"])
        try write("b.yaml", service("api", ip: "10.96.0.11"))
        #expect(names(await iterator.next() ?? []) == ["+Service default/api"])
        try FileManager.default.removeItem(atPath: dir + "/a.yaml")
        #expect(names(await iterator.next() ?? []) == ["-Service default/web"])
    }

    @Test func aMissingFolderReportsAnErrorAndWithdrawsNothing() throws {
        try write("a.yaml", service("web", ip: "10.96.0.10"))
        let source = ManifestSource(directory: dir)
        #expect(source.rescan().count == 1)
        try FileManager.default.removeItem(atPath: dir)
        #expect(source.rescan().isEmpty)
        #expect(source.objectIDs.count == 1)
    }
}
