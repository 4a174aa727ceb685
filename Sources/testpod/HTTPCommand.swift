import ArgumentParser
import TestpodKit

struct HTTPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "GET a path over HTTP/1.0 and print the status and body as JSON (no curl needed).",
        discussion: """
            For kproxy's /healthz and /livez and the health-check node ports of Local services.

            Example: testpod http --path /healthz 127.0.0.1:10256
            """)

    @Option(help: "The path to GET.")
    var path = "/"

    @Option(name: .customLong("timeout-ms"), help: "How long the whole request may take, in milliseconds.")
    var timeoutMs = 2000

    @Argument(help: "ADDR:PORT, or [ADDR6]:PORT for IPv6.")
    var target: String

    func validate() throws {
        guard SocketAddress(target) != nil else { throw ValidationError("not ADDR:PORT or [ADDR6]:PORT: \(target)") }
        guard path.hasPrefix("/") else { throw ValidationError("--path must start with /") }
    }

    func run() throws {
        try printJSON(HTTPGet(target: SocketAddress(target)!, path: path, timeoutMs: timeoutMs).run())
    }
}
