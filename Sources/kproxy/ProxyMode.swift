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
            return try NFTablesDataPlane(settings: settings)
        }
    }
}
