import Foundation
import Testing
@testable import NFTablesDataPlane

/// Figures, not a timed test: runs only with `KPROXY_NFT_BENCH=1000,10000,50000`.
@Test(.enabled(if: canUseNetns && ProcessInfo.processInfo.environment["KPROXY_NFT_BENCH"] != nil,
               "set KPROXY_NFT_BENCH=sizes (and run as root) to measure"))
func nftablesBenchmark() async throws {
    let sizes = (ProcessInfo.processInfo.environment["KPROXY_NFT_BENCH"] ?? "")
        .split(separator: ",").compactMap { Int($0) }
    for r in try await NFTBenchmark.run(sizes: sizes) { print(r) }
}
