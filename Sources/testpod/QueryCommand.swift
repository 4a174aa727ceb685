#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import TestpodKit

struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Make N connections (or send N datagrams) and report who answered, as JSON.",
        discussion: """
            Every attempt uses a new socket (a new source port). The report counts answers per pod with \
            the source addresses the pod saw, and refusals (ECONNREFUSED: TCP reset or ICMP port \
            unreachable), unreachables (ICMP host/net unreachable), timeouts (blackholed) and resets.

            SIGTERM or SIGINT stops it early; the attempts made are still reported.

            Example: testpod query --count 20 --timeout-ms 500 10.96.0.10:80
                     testpod query --udp --count 5 [fd00:10:96::a]:53
            """)

    @OptionGroup var target: ProbeTarget

    @Option(name: .long, help: "How many connections or datagrams.")
    var count = 1

    @Option(name: .long, help: "How many attempts run at the same time.")
    var parallel = 1

    @Option(name: .customLong("interval-ms"), help: "Pause between attempts, in milliseconds.")
    var intervalMs = 0

    @Option(name: .long, help: "Output: json (default) or text (one line for people: who answered how often).")
    var format: Format = .json

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case json, text
    }

    func validate() throws {
        if count < 1 { throw ValidationError("--count must be at least 1") }
        if parallel < 1 { throw ValidationError("--parallel must be at least 1") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        stopOnSIGTERM()
        let probe = Probe(target: target.address, proto: target.proto, source: target.sourceAddress,
                          timeoutMs: target.timeoutMs)
        let report = probe.run(count: count, parallel: parallel, intervalMs: intervalMs,
                               shouldStop: { isStopRequested() })
        switch format {
        case .json: try printJSON(report)
        case .text: print(report.summary)
        }
    }
}
