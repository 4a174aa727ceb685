import ArgumentParser
import Logging
import ServiceTable

/// The data planes `--proxy-mode` can choose.
enum ProxyMode: String, ExpressibleByArgument, CaseIterable {
    case nftables

    func makeDataPlane(settings: ProxySettings, logger: Logger) throws -> any DataPlane {
        switch self {
        case .nftables:
            throw ValidationError("the nftables data plane is not part of this build")
        }
    }
}
