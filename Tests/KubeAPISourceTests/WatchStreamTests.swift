import Foundation
import KubeObjects
import NIOCore
import Testing
@testable import ObjectSources

/// Decoding what the API sends: lists with bad items, watch streams cut anywhere by the network.
struct WatchStreamTests {
    static func service(_ name: String, port: String = "80", rv: String = "5") -> String {
        #"{"kind":"Service","apiVersion":"v1","metadata":{"name":"\#(name)","namespace":"ns","resourceVersion":"\#(rv)"},"spec":{"clusterIP":"10.96.0.10","ports":[{"port":\#(port),"protocol":"TCP"}]}}"#
    }

    @Test func aBadItemInAListIsKeptAsRejectedWithItsName() throws {
        let body = #"{"kind":"ServiceList","metadata":{"resourceVersion":"42","continue":"abc"},"items":["#
            + Self.service("good") + "," + Self.service("bad", port: #""eighty""#) + "," + Self.service("zero", port: "0") + "]}"
        let list = try APIList.decode(ByteBuffer(string: body), kind: .service)
        #expect(list.metadata?.resourceVersion == "42")
        #expect(list.metadata?.continue == "abc")
        let items = try #require(list.items)
        #expect(items.count == 3)
        guard case .object(.service(let good)) = items[0].content else { Issue.record("good rejected"); return }
        #expect(good.metadata.name == "good")
        for (item, name) in zip(items[1...], ["bad", "zero"]) {
            guard case .rejected(let reason) = item.content else { Issue.record("\(name) accepted"); continue }
            #expect(item.id?.description == "Service ns/\(name)")
            #expect(reason.contains("spec.ports[0].port"), "\(reason)")
        }
    }

    @Test func eventsCutAcrossChunksAreReassembled() throws {
        let stream = [
            #"{"type":"ADDED","object":"# + Self.service("a", rv: "6") + "}\n",
            #"{"type":"BOOKMARK","object":{"kind":"Service","apiVersion":"v1","metadata":{"resourceVersion":"9"}}}"# + "\n",
            #"{"type":"DELETED","object":"# + Self.service("a", rv: "10") + "}\n",
            #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (9)","reason":"Expired","code":410}}"# + "\n",
        ].joined()
        let bytes = Array(stream.utf8)
        // Every chunk size from 1 byte to the whole stream gives the same events.
        for size in [1, 2, 7, 64, 333, bytes.count] {
            var decoder = WatchStreamDecoder(kind: .service)
            var events: [WatchEvent] = []
            var offset = 0
            while offset < bytes.count {
                let chunk = ByteBuffer(bytes: bytes[offset..<min(offset + size, bytes.count)])
                events += try decoder.feed(chunk).map { try $0.get() }
                offset += size
            }
            events += try decoder.finish().map { try $0.get() }
            #expect(events.map(\.type) == [.added, .bookmark, .deleted, .error], "chunk size \(size)")
            #expect(events.map(\.object.resourceVersion) == ["6", "9", "10", nil])
            #expect(events[2].object.id?.description == "Service ns/a")
            #expect(events[3].object.status?.code == 410)
            #expect(events[3].object.status?.reason == "Expired")
        }
    }

    @Test func aLineThatIsNotAnEventDoesNotStopTheStream() throws {
        var decoder = WatchStreamDecoder(kind: .service)
        let text = "not json\n" + #"{"type":"MODIFIED","object":"# + Self.service("b") + "}\n"
        let results = try decoder.feed(ByteBuffer(string: text))
        #expect(results.count == 2)
        if case .success = results[0] { Issue.record("garbage decoded") }
        #expect(try results[1].get().type == .modified)
    }

    @Test func backoffGrowsToItsMaximumWithJitterAndResets() {
        var b = Backoff(BackoffPolicy(initial: .milliseconds(100), maximum: .seconds(1), factor: 2, jitter: 0.5))
        let waits = (0..<8).map { _ in b.next() }
        #expect(waits[0] <= .milliseconds(100) && waits[0] >= .milliseconds(50))
        #expect(waits[1] <= .milliseconds(200) && waits[1] >= .milliseconds(100))
        #expect(waits.allSatisfy { $0 <= .seconds(1) })
        #expect(waits[7] >= .milliseconds(500))
        b.reset()
        #expect(b.next() <= .milliseconds(100))
    }
}
