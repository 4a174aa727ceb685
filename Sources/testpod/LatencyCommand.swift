#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TestpodKit

struct LatencyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency",
        abstract: "Time N sequential new TCP connections (connect → first answer byte); print percentiles as JSON.",
        discussion: """
            Percentiles (p10, p50, p90, p99, mean) are in microseconds over the answered connections; \
            connections that got no answer are counted in `failed`. For `kproxy bench latency`.

            Example: testpod latency --count 2000 10.96.0.10:80
            """)

    @OptionGroup var target: ProbeTarget

    @Option(name: .long, help: "How many connections.")
    var count = 1000

    @Flag(help: "Also print every connection's time (`samples`), e.g. to merge several runs.")
    var samples = false

    func validate() throws {
        if count < 1 { throw ValidationError("--count must be at least 1") }
        if target.proto != .tcp { throw ValidationError("latency measures TCP connections only") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        stopOnSIGTERM()
        let probe = Probe(target: target.address, proto: .tcp, source: target.sourceAddress, timeoutMs: target.timeoutMs)
        try printJSON(probe.latency(count: count, keepSamples: samples, shouldStop: { isStopRequested() }))
    }
}
