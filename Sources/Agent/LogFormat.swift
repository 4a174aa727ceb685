import Foundation
import Logging

/// How the agent writes logs: `text` (swift-log's stream handler) or `json` (one object per line,
/// for log collectors), like kube-proxy's `--logging-format`.
public enum LogFormat: String, Sendable, CaseIterable {
    case text
    case json

    /// Installs the process-wide log handler. Call once, at start.
    public func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = switch self {
            case .text: StreamLogHandler.standardError(label: label)
            case .json: JSONLogHandler(label: label)
            }
            handler.logLevel = level
            return handler
        }
    }
}

/// Writes each log record as one JSON object on standard error:
/// `{"ts":"…","level":"info","logger":"kproxy.agent","msg":"…", <metadata>…}`.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private static let lock = NSLock()

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var record: [String: Any] = [
            "ts": ISO8601DateFormatter().string(from: Date()),
            "level": event.level.rawValue,
            "logger": label,
            "msg": event.message.description,
        ]
        for (k, v) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) where record[k] == nil {
            record[k] = v.description
        }
        guard let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
        Self.lock.withLock {
            FileHandle.standardError.write(data + Data("\n".utf8))
        }
    }
}
