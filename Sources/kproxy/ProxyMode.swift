import Foundation
import ArgumentParser
import Logging
import NFTablesDataPlane
import ServiceTable

/// The last list a data plane's observer reported, to log a persisting condition once.
private final class Reported: @unchecked Sendable {
    private let lock = NSLock()
    private var last: [String] = []

    /// Records `now`; returns whether it differs from what was recorded before.
    func changed(to now: [String]) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard now != last else { return false }
        last = now
        return true
    }
}

/// The data planes `--proxy-mode` can choose.
enum ProxyMode: String, ExpressibleByArgument, CaseIterable {
    case nftables

    func makeDataPlane(settings: ProxySettings, logger: Logger) throws -> any DataPlane {
        switch self {
        case .nftables:
            let reported = Reported()
            return try NFTablesDataPlane(settings: settings) { s in
                // What each transaction did, for -v 2 (the controller logs errors and retries).
                guard s.kind != .unchanged || s.error != nil else { return }
                var metadata: Logger.Metadata = [
                    "kind": "\(s.kind.rawValue)", "elements": "+\(s.elementsAdded) -\(s.elementsRemoved)",
                    "chains": "+\(s.chainsAdded) -\(s.chainsRemoved)", "bytes": "\(s.bytes)",
                    "render": .string(String(format: "%.3fms", s.renderSeconds * 1000)),
                    "kernel": .string(String(format: "%.3fms", s.kernelSeconds * 1000)),
                ]
                if s.conntrackFilters > 0 { metadata["conntrackDeleted"] = "\(s.conntrackDeleted)" }
                if let why = s.fullBecause { metadata["fullBecause"] = "\(why)" }
                if let why = s.replacedBecause { metadata["replacedBecause"] = "\(why)" }
                if s.conflicts > 0 { metadata["conflicts"] = "\(s.conflicts)" }
                logger.debug("nftables transaction", metadata: metadata)
                // Two Services claiming one destination (the API allows it for external IPs): say
                // which, once per change — each full sync finds them again.
                if s.kind == .full, reported.changed(to: s.conflictClaimants), !s.conflictClaimants.isEmpty {
                    logger.warning("service ports claim the same destination; one of each is programmed",
                                   metadata: ["claims": .array(s.conflictClaimants.map { .string($0) })])
                }
                if let error = s.conntrackError {
                    logger.warning("deleting stale conntrack entries failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
