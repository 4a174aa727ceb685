#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Foundation
import TestpodKit

struct StreamCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Hold K connections open, exchange a line on each every interval, report failures as JSON.",
        discussion: """
            For "a restart under steady traffic loses no connection": a broken connection, an unanswered \
            exchange or a different pod answering on the same connection is a failure. With --udp each \
            flow keeps one source port, so the flow's conntrack entry is what is tested. SIGTERM or SIGINT \
            ends the run early; the report is still printed. Once every connection has been tried it prints \
            `opened N of K` (before the JSON line).

            Example: testpod stream --connections 8 --seconds 10 --interval-ms 100 10.96.0.10:80
            """)

    @OptionGroup var target: ProbeTarget

    @Option(name: .long, help: "How many connections (or UDP flows) to hold.")
    var connections = 4

    @Option(name: .long, help: "How long to run, in seconds.")
    var seconds: Double = 5

    @Option(name: .customLong("interval-ms"), help: "Pause between exchanges, in milliseconds.")
    var intervalMs = 100

    @Option(name: .long, help: "Output: json (default) or text (one line for people).")
    var format: QueryCommand.Format = .json

    func validate() throws {
        if connections < 1 { throw ValidationError("--connections must be at least 1") }
        if seconds < 0 { throw ValidationError("--seconds must not be negative") }
        if intervalMs < 1 { throw ValidationError("--interval-ms must be positive") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        stopOnSIGTERM()
        let hold = Hold(target: target.address, proto: target.proto, source: target.sourceAddress,
                        connections: connections, seconds: seconds, intervalMs: intervalMs,
                        timeoutMs: target.timeoutMs)
        let report = hold.run(shouldStop: { isStopRequested() }, opened: { n in
            // A progress line (not JSON) that lets a harness wait until the flows exist.
            FileHandle.standardOutput.write(Data("opened \(n) of \(connections)\n".utf8))
        })
        switch format {
        case .json: try printJSON(report)
        case .text: print(report.summary)
        }
    }
}
