#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NetnsHarness
import Testing
import TestpodKit

/// `kproxy bench` keeps working: a tiny sync run prints its table and its JSON. No timing is
/// asserted — the figures belong in Benchmarks/README.md, not in a test.
@Suite(.serialized, .enabled(if: Cluster.isSupported, "\(Cluster.unsupportedReason ?? "")"))
struct BenchCommandTests {
    @Test func tinySyncBenchPrintsATableWithTheBaseline() throws {
        let r = try Shell.run([try Binaries.kproxy(), "bench", "sync", "--services", "200", "--endpoints", "2"], timeout: 300)
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.first?.contains("full sync") == true, "\(r)")
        let row = try #require(lines.first { $0.hasPrefix("| 200 × 2") }, "\(r)")
        #expect(!row.contains("not run"), "the baseline runs at 200 services: \(row)")
        // Its scratch namespaces (kpbench-PID-…) are gone.
        let left = try Shell.run(["ip", "netns", "list"]).stdout.split(separator: "\n").filter { $0.hasPrefix("kpbench-") }
        #expect(left.isEmpty, "\(left)")
    }

    @Test func tinySyncBenchPrintsJSON() throws {
        let r = try Shell.run([try Binaries.kproxy(), "bench", "sync", "--services", "200", "--endpoints", "2",
                               "--baseline-max", "0", "-o", "json"], timeout: 300)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r)")
        let rows = try #require(doc["results"] as? [[String: Any]])
        #expect(rows.count == 1)
        #expect(rows.first?["services"] as? Int == 200)
        #expect((rows.first?["fullSyncSeconds"] as? Double ?? 0) > 0)
        #expect(rows.first?["baselineFullSeconds"] == nil)
    }
}

/// The percentiles `testpod latency` reports (pure arithmetic: runs without root).
struct BenchLatencyReportTests {
    @Test func nearestRankPercentiles() {
        let r = LatencyReport(target: "x", samples: (1...100).map(Double.init).reversed(), failed: 3)
        #expect(r.count == 103)
        #expect([r.p10, r.p50, r.p90, r.p99] == [10, 50, 90, 99])
        #expect(r.mean == 50.5)
        let empty = LatencyReport(target: "x", samples: [], failed: 2)
        #expect(empty.p50 == 0 && empty.count == 2)
    }
}
