import Yams

/// A problem found while reading manifests, located as precisely as we can:
/// `deploy/examples/web.yaml:14: Service default/web: spec.ports[0].port: must be between 1 and 65535, got 0`.
public struct ManifestProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String?
    public var line: Int?
    /// The object at fault, when it could be named (`Service default/web`).
    public var object: String?
    public var field: String?
    public var message: String

    public init(file: String? = nil, line: Int? = nil, object: String? = nil, field: String? = nil, message: String) {
        self.file = file
        self.line = line
        self.object = object
        self.field = field
        self.message = message
    }

    public var description: String {
        var parts: [String] = []
        switch (file, line) {
        case let (f?, l?): parts.append("\(f):\(l)")
        case let (f?, nil): parts.append(f)
        case let (nil, l?): parts.append("line \(l)")
        default: break
        }
        if let object { parts.append(object) }
        if let field { parts.append(field) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}

/// An object read from a manifest, with the line its document starts on.
public struct DecodedObject: Sendable, Hashable {
    public var object: KubeObject
    public var line: Int
}

/// What one manifest file or text held.
public struct ManifestContents: Sendable {
    /// Valid objects of the kinds kproxy reads, in file order.
    public var objects: [DecodedObject] = []
    /// Objects that were named but are unusable (failed to decode or validate), with why.
    public var rejected: [(id: ObjectID?, problem: ManifestProblem)] = []
    /// A YAML/JSON syntax error: the text could not be read past this point.
    public var syntaxError: ManifestProblem?
    /// Documents of other kinds (Deployment, ConfigMap, …), skipped.
    public var ignoredKinds: [String] = []

    public var problems: [ManifestProblem] { rejected.map(\.problem) + (syntaxError.map { [$0] } ?? []) }
}

/// Reads Kubernetes manifests: YAML or JSON, multi-document, `kind: List` (and `ServiceList`, …),
/// objects as `kubectl get -o yaml|json` prints them. Never throws: every problem is reported in the result.
public enum ManifestDecoder {
    public static func decode(_ text: String, file: String? = nil) -> ManifestContents {
        var result = ManifestContents()
        // Yams tells libyaml the text is UTF-8, and then libyaml does not skip a byte order mark
        // (Windows editors write one): it would become part of the first key.
        let text = text.first == "\u{FEFF}" ? String(text.dropFirst()) : text
        do {
            // No resolver rules: the parser resolves every mapping key's tag to look for duplicates, and
            // with the default rules that is a regular-expression match per key. Scalars are typed
            // later, by `YAMLValueDecoder`, from their text and quoting.
            let parser = try Parser(yaml: text, resolver: .basic)
            while let root = try parser.nextRoot() {
                decodeDocument(root, defaultKind: nil, defaultAPIVersion: nil, file: file, into: &result)
            }
        } catch let error as YamlError {
            result.syntaxError = syntaxProblem(error, file: file)
        } catch {
            result.syntaxError = ManifestProblem(file: file, message: "\(error)")
        }
        return result
    }

    private static func syntaxProblem(_ error: YamlError, file: String?) -> ManifestProblem {
        switch error {
        case let .scanner(context, problem, mark, _):
            // A scanner error's context is the token being read ("while scanning a quoted scalar"):
            // an unterminated string is found at the end of the text, but is fixed where it starts.
            let line = context?.mark.line ?? mark.line
            let ctx = context.map { "\($0.text): " } ?? ""
            return ManifestProblem(file: file, line: line, message: "invalid YAML: \(ctx)\(problem)")
        case let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            // A parser error's context is the enclosing block, possibly far above: name it, but
            // blame the line where the parser gave up.
            let ctx = context.map { "\($0.text) (line \($0.mark.line)): " } ?? ""
            return ManifestProblem(file: file, line: mark.line, message: "invalid YAML: \(ctx)\(problem)")
        case let .reader(problem, _, _, _):
            return ManifestProblem(file: file, message: "unreadable text: \(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return ManifestProblem(file: file, line: context.mark.line,
                                   message: "duplicate keys \(duplicates.joined(separator: ", "))")
        default:
            return ManifestProblem(file: file, message: "invalid YAML: \(error)")
        }
    }

    /// `defaultKind` and `defaultAPIVersion` come from a typed list (`ServiceList`, `v1`): the API
    /// server leaves them out of the items. `converted`: the node as a `YAMLValue`, when a list
    /// already converted its items (the Yams node is still needed for line numbers).
    private static func decodeDocument(_ node: Yams.Node, converted: YAMLValue? = nil, defaultKind: String?,
                                       defaultAPIVersion: String?, file: String?, into result: inout ManifestContents) {
        guard case .mapping = node else {
            if case .scalar(let s) = node, s.string.isEmpty || s.string == "null" { return }
            result.rejected.append((nil, ManifestProblem(file: file, line: node.mark?.line,
                                                         message: "a document must be an object")))
            return
        }
        let line = node.mark?.line ?? 1
        let value = converted ?? YAMLValue(node)
        let kind = value["kind"]?.string ?? defaultKind
        guard let kind, !kind.isEmpty else {
            result.rejected.append((nil, ManifestProblem(file: file, line: line, object: describe(value, kind: nil),
                                                         field: "kind", message: "missing")))
            return
        }
        if kind == "List" || kind.hasSuffix("List") {
            let itemKind = kind == "List" ? nil : String(kind.dropLast(4))
            let itemAPIVersion = kind == "List" ? nil : value["apiVersion"]?.string
            guard case .sequence(let itemValues)? = value["items"], case .mapping(let pairs) = node,
                  case .sequence(let items)? = pairs.first(where: { $0.key.string == "items" })?.value else {
                if value["items"] == nil || value["items"]?.isNull == true { return }
                result.rejected.append((nil, ManifestProblem(file: file, line: line, field: "items",
                                                             message: "a \(kind) needs a list of items")))
                return
            }
            for (item, itemValue) in zip(items, itemValues) {
                decodeDocument(item, converted: itemValue, defaultKind: itemKind, defaultAPIVersion: itemAPIVersion,
                               file: file, into: &result)
            }
            return
        }
        guard let objectKind = ObjectKind(rawValue: kind) else {
            result.ignoredKinds.append(kind)
            return
        }
        // Another API group's kind of the same name (Knative's serving.knative.dev/v1 Service) is
        // not ours: skip it rather than reject it. No apiVersion at all (hand-written) is ours.
        if let apiVersion = value["apiVersion"]?.string ?? defaultAPIVersion, !apiVersion.isEmpty,
           !objectKind.apiVersions.contains(apiVersion) {
            result.ignoredKinds.append("\(kind) (\(apiVersion))")
            return
        }
        let name = describe(value, kind: objectKind.rawValue)
        let id = identity(value, kind: objectKind)
        do {
            let object: KubeObject
            let decoder = YAMLValueDecoder()
            switch objectKind {
            case .service: object = .service(try decoder.decode(Service.self, from: value))
            case .endpointSlice: object = .endpointSlice(try decoder.decode(EndpointSlice.self, from: value))
            case .node: object = .node(try decoder.decode(Node.self, from: value))
            }
            let errors = object.validate()
            if errors.isEmpty {
                result.objects.append(DecodedObject(object: object, line: line))
            } else {
                let first = errors[0]
                let message = errors.count == 1 ? first.message
                    : first.message + " (and \(errors.count - 1) more: " + errors.dropFirst().map(\.description).joined(separator: "; ") + ")"
                result.rejected.append((id, ManifestProblem(file: file, line: mark(of: node, at: first.field) ?? line,
                                                            object: name, field: first.field, message: message)))
            }
        } catch let error as DecodingError {
            let (path, message) = explain(error)
            let field = fieldPath(path)
            result.rejected.append((id, ManifestProblem(file: file, line: mark(of: node, at: field) ?? line,
                                                        object: name, field: field.isEmpty ? nil : field,
                                                        message: message)))
        } catch {
            result.rejected.append((id, ManifestProblem(file: file, line: line, object: name, message: "\(error)")))
        }
    }

    private static func identity(_ node: YAMLValue, kind: ObjectKind) -> ObjectID? {
        guard let name = node["metadata"]?["name"]?.string, !name.isEmpty else { return nil }
        let ns = kind == .node ? "" : (node["metadata"]?["namespace"]?.string ?? "default")
        return ObjectID(kind: kind, name: NamespacedName(namespace: ns, name: name))
    }

    private static func describe(_ node: YAMLValue, kind: String?) -> String? {
        let name = node["metadata"]?["name"]?.string
        let ns = node["metadata"]?["namespace"]?.string
        switch (kind, name) {
        case let (k?, n?): return kind == "Node" ? "\(k) \(n)" : "\(k) \(ns ?? "default")/\(n)"
        case let (k?, nil): return "\(k) (unnamed)"
        default: return nil
        }
    }

    /// A decoding error as the field at fault and what is wrong with it
    /// (`spec.ports[0].port`, `expected an integer`); also used for objects read from the API.
    public static func describe(_ error: DecodingError) -> (field: String, message: String) {
        let (path, message) = explain(error)
        return (fieldPath(path), message)
    }

    private static func explain(_ error: DecodingError) -> ([CodingKey], String) {
        switch error {
        case let .typeMismatch(type, ctx):
            return (ctx.codingPath, "expected \(friendly(type))")
        case let .valueNotFound(type, ctx):
            return (ctx.codingPath, "expected \(friendly(type)), found null")
        case let .keyNotFound(key, ctx):
            return (ctx.codingPath + [key], "required field is missing")
        case let .dataCorrupted(ctx):
            return (ctx.codingPath, ctx.debugDescription)
        @unknown default:
            return ([], "\(error)")
        }
    }

    private static func friendly(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: return "an integer"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        default:
            let t = String(describing: type)
            if t.hasPrefix("Array") { return "a list" }
            if t.hasPrefix("Dictionary") { return "an object" }
            return t
        }
    }

    /// `spec.ports[0].port` from a coding path.
    static func fieldPath(_ path: [CodingKey]) -> String {
        var out = ""
        for key in path {
            if let i = key.intValue, key.stringValue.hasPrefix("Index") || key.stringValue == String(i) {
                out += "[\(i)]"
            } else {
                out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return out
    }

    /// The line of the node a field path (`spec.ports[0].port`) points at, or of its nearest ancestor.
    static func mark(of root: Yams.Node, at field: String) -> Int? {
        var node = root
        var best = root.mark?.line
        var token = ""
        func step(_ key: String) -> Bool {
            if key.isEmpty { return true }
            guard case .mapping(let mapping) = node,
                  let pair = mapping.first(where: { $0.key.string == key }) else { return false }
            node = pair.value
            // The key's line: a block value (`spec:`, `labels:`) starts on the line below its key.
            if let l = pair.key.mark?.line ?? node.mark?.line { best = l }
            return true
        }
        var chars = Substring(field)
        while let c = chars.first {
            chars.removeFirst()
            switch c {
            case ".":
                if !step(token) { return best }
                token = ""
            case "[":
                if !step(token) { return best }
                token = ""
                let idx = chars.prefix { $0 != "]" }
                chars = chars.dropFirst(idx.count + 1)
                guard let i = Int(idx), case .sequence(let seq) = node, i < seq.count else { return best }
                node = seq[i]
                if let l = node.mark?.line { best = l }
            default:
                token.append(c)
            }
        }
        _ = step(token)
        return best
    }
}
