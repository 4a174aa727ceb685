#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Foundation
import TestpodKit

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Answer every TCP/SCTP connection and UDP datagram with `NAME CLIENT-ADDR:PORT`.",
        discussion: """
            Listens on every address, IPv4 and IPv6, unless --address is given. On a TCP connection each \
            further line received is answered with the same line.

            Example: testpod serve --name web-1 --tcp 80,8080 --udp 53 --ready-file /tmp/web-1.ready
            """)

    @Option(name: .long, help: "The name to answer with (default: the host name).")
    var name: String?

    @Option(name: .long, help: "TCP ports, comma-separated; repeatable.")
    var tcp: [String] = []

    @Option(name: .long, help: "UDP ports, comma-separated; repeatable.")
    var udp: [String] = []

    @Option(name: .long, help: "SCTP ports, comma-separated; repeatable.")
    var sctp: [String] = []

    @Option(name: .long, help: "Listen on this address only.")
    var address: String?

    @Option(name: .customLong("ready-file"), help: "Write this file once every port listens.")
    var readyFile: String?

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let tcpPorts = try parsePorts(tcp, "--tcp")
        let udpPorts = try parsePorts(udp, "--udp")
        let sctpPorts = try parsePorts(sctp, "--sctp")
        if tcpPorts.isEmpty && udpPorts.isEmpty && sctpPorts.isEmpty {
            throw ValidationError("give at least one of --tcp, --udp, --sctp")
        }
        let podName = name ?? ProcessInfo.processInfo.hostName
        let server = Server(name: podName, address: address)
        do {
            for p in tcpPorts { try server.serveStream(port: p) }
            for p in sctpPorts { try server.serveStream(port: p, sctp: true) }
            for p in udpPorts { try server.serveDatagram(port: p) }
        } catch let e as ServerError {
            throw ValidationError("testpod \(podName): \(e.description)")
        }
        var summary = "testpod \(podName) serving"
        if !tcpPorts.isEmpty { summary += " tcp:" + tcpPorts.map(String.init).joined(separator: ",") }
        if !udpPorts.isEmpty { summary += " udp:" + udpPorts.map(String.init).joined(separator: ",") }
        if !sctpPorts.isEmpty { summary += " sctp:" + sctpPorts.map(String.init).joined(separator: ",") }
        FileHandle.standardOutput.write(Data((summary + "\n").utf8))
        if let readyFile {
            guard FileManager.default.createFile(atPath: readyFile, contents: Data((summary + "\n").utf8)) else {
                throw ValidationError("cannot write \(readyFile)")
            }
        }
        while true { pause() }
    }
}
