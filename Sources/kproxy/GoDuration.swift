import ArgumentParser

/// A duration written as Kubernetes writes them (Go's time.Duration syntax): `30s`, `1m30s`, `500ms`, `1h`.
struct GoDuration: ExpressibleByArgument, Sendable, CustomStringConvertible {
    let duration: Duration
    let description: String

    init?(argument: String) {
        guard let d = GoDuration.parse(argument) else { return nil }
        duration = d
        description = argument
    }

    static func parse(_ text: String) -> Duration? {
        if text == "0" { return .zero }
        let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3),
                                         ("s", 1), ("m", 60), ("h", 3600)]
        var rest = Substring(text)
        var seconds = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            guard let unit = units.first(where: { rest.hasPrefix($0.0) && !(rest.hasPrefix("ms") && $0.0 == "m") }) else {
                return nil
            }
            rest = rest.dropFirst(unit.0.count)
            seconds += value * unit.1
        }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }
}
