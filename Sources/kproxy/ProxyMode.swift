import ArgumentParser
import Logging
import NFTablesDataPlane
import ServiceTable

/// The data planes `--proxy-mode` can choose.
enum ProxyMode: String, ExpressibleByArgument, CaseIterable {
    case nftables

    func makeDataPlane(settings: ProxySettings, logger: Logger) throws -> any DataPlane {
        switch self {
        case .nftables:
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
                if let error = s.conntrackError {
                    logger.warning("deleting stale conntrack entries failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
