#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Foundation
import TestpodKit

/// `testpod`: the pod and the client of kproxy's end-to-end tests. One subcommand per file.
@main
struct Testpod: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "testpod",
        abstract: "A tiny pod and client for kproxy's network tests.",
        discussion: """
            `serve` answers every connection or datagram with `NAME CLIENT-ADDR:PORT`; `query` and \
            `stream` connect to an address and report, as JSON, who answered and how attempts failed.
            """,
        subcommands: [ServeCommand.self, QueryCommand.self, StreamCommand.self, HTTPCommand.self, LatencyCommand.self])
}

/// Options shared by `query` and `stream`.
struct ProbeTarget: ParsableArguments {
    @Flag(name: .long, help: "Send UDP datagrams instead of TCP connections.")
    var udp = false

    @Flag(name: .long, help: "Use SCTP instead of TCP.")
    var sctp = false

    @Option(name: .customLong("timeout-ms"), help: "How long one attempt may take, in milliseconds.")
    var timeoutMs = 1000

    @Option(name: .long, help: "Source address to send from (must be local).")
    var source: String?

    @Argument(help: "ADDR:PORT, or [ADDR6]:PORT for IPv6.")
    var target: String

    func validate() throws {
        if udp && sctp { throw ValidationError("--udp and --sctp exclude each other") }
        guard SocketAddress(target) != nil else {
            throw ValidationError("not ADDR:PORT or [ADDR6]:PORT: \(target)")
        }
        if let source, SocketAddress(ip: source, port: 0) == nil {
            throw ValidationError("not an IP address: \(source)")
        }
        if timeoutMs <= 0 { throw ValidationError("--timeout-ms must be positive") }
    }

    var proto: ProbeProtocol { udp ? .udp : sctp ? .sctp : .tcp }
    var address: SocketAddress { SocketAddress(target)! }
    var sourceAddress: SocketAddress? { source.flatMap { SocketAddress(ip: $0, port: 0) } }
}

/// Prints a report as one line of JSON with sorted keys.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = try encoder.encode(value)
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// Parses `80,8080` (repeatable) into ports.
func parsePorts(_ lists: [String], _ flag: String) throws -> [UInt16] {
    try lists.flatMap { $0.split(separator: ",") }.map {
        guard let p = UInt16($0.trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError("\(flag): not a port: \($0)")
        }
        return p
    }
}

/// Set by SIGTERM/SIGINT: `query` and `stream` then stop early and still print their report.
nonisolated(unsafe) private var stopRequested: sig_atomic_t = 0

func stopOnSIGTERM() {
    signal(SIGTERM) { _ in stopRequested = 1 }
    signal(SIGINT) { _ in stopRequested = 1 }
}

func isStopRequested() -> Bool { stopRequested != 0 }
