import Foundation
import KubeObjects
import NIOCore
import NIOFoundationCompat

/// One item of a list or the object of a watch event, as the API sent it. A bad item does not fail
/// the list or the stream around it: it is kept as `rejected`, with whatever identity could be read,
/// so it can be logged by name and skipped.
struct APIItem: Decodable, Sendable {
    enum Content: Sendable {
        case object(KubeObject)
        case rejected(reason: String)
    }

    var content: Content
    /// The object's identity when its metadata could be read (also for rejected items).
    var id: ObjectID?
    var resourceVersion: String?
    /// For a `Status` (the object of an ERROR watch event).
    var status: APIStatus?

    init(from decoder: Decoder) throws {
        guard let kind = decoder.userInfo[.kproxyObjectKind] as? ObjectKind else {
            throw KubeAPIError.decoding("APIItem needs the object kind in the decoder's userInfo")
        }
        let identity = ItemIdentity(decoder: decoder)
        resourceVersion = identity.resourceVersion
        if identity.kind == "Status" {
            status = try? APIStatus(from: decoder)
        }
        if let name = identity.name, !name.isEmpty {
            let ns = kind == .node ? "" : (identity.namespace ?? "default")
            id = ObjectID(kind: kind, name: NamespacedName(namespace: ns, name: name))
        }
        do {
            let object: KubeObject
            switch kind {
            case .service: object = .service(try Service(from: decoder))
            case .endpointSlice: object = .endpointSlice(try EndpointSlice(from: decoder))
            case .node: object = .node(try Node(from: decoder))
            }
            let problems = object.validate()
            if problems.isEmpty {
                content = .object(object)
                id = object.id
            } else {
                content = .rejected(reason: problems.map(\.description).joined(separator: "; "))
            }
        } catch let error as DecodingError {
            let (field, message) = ManifestDecoder.describe(error)
            content = .rejected(reason: field.isEmpty ? message : "\(field): \(message)")
        } catch {
            content = .rejected(reason: "\(error)")
        }
    }
}

/// The name, namespace and resourceVersion of an item, read leniently (never throws).
private struct ItemIdentity {
    var kind: String?
    var name: String?
    var namespace: String?
    var resourceVersion: String?

    private enum Keys: String, CodingKey { case kind, metadata }
    private enum MetaKeys: String, CodingKey { case name, namespace, resourceVersion }

    init(decoder: Decoder) {
        guard let c = try? decoder.container(keyedBy: Keys.self) else { return }
        kind = try? c.decodeIfPresent(String.self, forKey: .kind)
        guard let m = try? c.nestedContainer(keyedBy: MetaKeys.self, forKey: .metadata) else { return }
        name = try? m.decodeIfPresent(String.self, forKey: .name)
        namespace = try? m.decodeIfPresent(String.self, forKey: .namespace)
        resourceVersion = try? m.decodeIfPresent(String.self, forKey: .resourceVersion)
    }
}

extension CodingUserInfoKey {
    static let kproxyObjectKind = CodingUserInfoKey(rawValue: "kproxy.objectKind")!
}

/// A list response (`ServiceList`, …): its resourceVersion, the continue token and the items.
struct APIList: Decodable, Sendable {
    struct ListMeta: Decodable, Sendable {
        var resourceVersion: String?
        var `continue`: String?
    }

    var metadata: ListMeta?
    var items: [APIItem]?

    static func decode(_ body: ByteBuffer, kind: ObjectKind) throws -> APIList {
        let decoder = JSONDecoder()
        decoder.userInfo[.kproxyObjectKind] = kind
        do {
            return try decoder.decode(APIList.self, from: body)
        } catch {
            throw KubeAPIError.decoding("list of \(kind.rawValue)s: \(error)")
        }
    }
}

/// One line of a watch stream: `{"type": "ADDED", "object": {…}}`.
struct WatchEvent: Decodable, Sendable {
    enum EventType: String, Decodable, Sendable {
        case added = "ADDED"
        case modified = "MODIFIED"
        case deleted = "DELETED"
        case bookmark = "BOOKMARK"
        case error = "ERROR"
    }

    var type: EventType
    var object: APIItem
}

/// Splits a watch response body into its lines (one JSON event per line) and decodes them.
/// Chunks from the network cut lines anywhere; a partial line waits for the rest.
struct WatchStreamDecoder {
    private var pending = ByteBuffer()
    private let decoder: JSONDecoder
    /// A single event larger than this means something is wrong; the stream is abandoned.
    let maximumLineLength: Int

    init(kind: ObjectKind, maximumLineLength: Int = 64 << 20) {
        decoder = JSONDecoder()
        decoder.userInfo[.kproxyObjectKind] = kind
        self.maximumLineLength = maximumLineLength
    }

    /// The events completed by `chunk`, in order. A line that is not a watch event at all is
    /// returned as a failure and does not stop the stream.
    mutating func feed(_ chunk: ByteBuffer) throws -> [Result<WatchEvent, KubeAPIError>] {
        var chunk = chunk
        pending.writeBuffer(&chunk)
        var events: [Result<WatchEvent, KubeAPIError>] = []
        while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - pending.readerIndex
            let line = pending.readSlice(length: length)!
            pending.moveReaderIndex(forwardBy: 1)
            if line.readableBytesView.allSatisfy({ $0 == 32 || $0 == 13 || $0 == 9 }) { continue }
            events.append(decode(line))
        }
        if pending.readableBytes > maximumLineLength {
            throw KubeAPIError.decoding("a watch event longer than \(maximumLineLength) bytes")
        }
        pending.discardReadBytes()
        return events
    }

    /// What is left when the stream ends: a last event without its newline.
    mutating func finish() -> [Result<WatchEvent, KubeAPIError>] {
        defer { pending.clear() }
        guard pending.readableBytesView.contains(where: { $0 != 32 && $0 != 10 && $0 != 13 && $0 != 9 }) else { return [] }
        return [decode(pending)]
    }

    private func decode(_ line: ByteBuffer) -> Result<WatchEvent, KubeAPIError> {
        do {
            return .success(try decoder.decode(WatchEvent.self, from: line))
        } catch {
            let text = String(buffer: line)
            return .failure(.decoding("watch event \(text.prefix(120))…: \(error)"))
        }
    }
}
