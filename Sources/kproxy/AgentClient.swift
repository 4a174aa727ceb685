import AsyncHTTPClient
import ArgumentParser
import Foundation
import NIOCore

/// Reads a running agent's local debug endpoints (`--metrics-bind-address`, 127.0.0.1:10249 by default).
struct AgentClient {
    static let defaultURL = "http://127.0.0.1:10249"
    let base: String

    init(_ url: String) {
        base = url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    /// GET `path`; returns the status code and body. A refused connection says where it looked.
    func get(_ path: String) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: base + path)
        request.method = .GET
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 64 << 20)
            return (Int(response.status.code), String(buffer: body))
        } catch {
            throw ValidationError("cannot reach the kproxy agent at \(base) (is `kproxy run` running there? --agent URL): \(error)")
        }
    }
}
