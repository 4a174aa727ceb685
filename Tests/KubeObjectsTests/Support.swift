import Foundation
import KubeObjects
import Testing

/// Reads a fixture: real `kubectl get -o yaml|json` output or an API server list.
func fixture(_ name: String) throws -> String {
    let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"),
                           "no fixture \(name)")
    return try String(contentsOf: url, encoding: .utf8)
}

extension ManifestContents {
    var services: [Service] {
        objects.compactMap { if case .service(let s) = $0.object { s } else { nil } }
    }
    var slices: [EndpointSlice] {
        objects.compactMap { if case .endpointSlice(let e) = $0.object { e } else { nil } }
    }
    var nodes: [Node] {
        objects.compactMap { if case .node(let n) = $0.object { n } else { nil } }
    }
    /// `Service default/web`, … of every object loaded.
    var ids: [String] { objects.map { $0.object.id.description } }
}

/// The 1-based line of the first line of `text` that contains `needle`.
func line(of needle: String, in text: String) -> Int? {
    text.split(separator: "\n", omittingEmptySubsequences: false)
        .firstIndex { $0.contains(needle) }
        .map { $0 + 1 }
}
