import Yams

/// A parsed YAML document reduced to what decoding needs: mappings as dictionaries, scalars as
/// their text plus whether they were written plain (unquoted, untagged).
///
/// Yams' own `YAMLDecoder` finds each key by comparing `Node`s, which resolves every key's tag with
/// regular expressions: 1.1 ms per Service-sized object, 11 s for 10k services. Converting the
/// tree once and decoding from dictionaries gives the same results in a small fraction of that.
indirect enum YAMLValue {
    /// `plain`: unquoted and without an explicit tag, so `null`, `true` or `42` mean what they say.
    case scalar(String, plain: Bool, tag: String)
    case mapping([String: YAMLValue])
    case sequence([YAMLValue])

    init(_ node: Yams.Node) {
        switch node {
        case .scalar(let s):
            let tag = s.tag.description
            self = .scalar(s.string, plain: s.style == .plain && (tag.isEmpty || tag == "?"), tag: tag)
        case .mapping(let m):
            var d: [String: YAMLValue] = [:]
            d.reserveCapacity(m.count)
            for pair in m {
                guard case .scalar(let k) = pair.key else { continue }
                d[k.string] = YAMLValue(pair.value)
            }
            self = .mapping(d)
        case .sequence(let s):
            self = .sequence(s.map { YAMLValue($0) })
        default:
            self = .scalar("", plain: true, tag: "")
        }
    }

    subscript(key: String) -> YAMLValue? {
        if case .mapping(let d) = self { return d[key] }
        return nil
    }

    /// The text of a scalar that is not null.
    var string: String? {
        if case .scalar(let s, _, _) = self, !isNull { return s }
        return nil
    }

    var isNull: Bool {
        switch self {
        case .scalar(let s, let plain, let tag):
            if tag == "tag:yaml.org,2002:null" { return true }
            return plain && (s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL")
        default: return false
        }
    }

    /// A scalar that may be read as a number or boolean (not quoted, not tagged `!!str`).
    fileprivate var typedText: String? {
        guard case .scalar(let s, let plain, let tag) = self else { return nil }
        return plain || tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:bool"
            || tag == "tag:yaml.org,2002:float" ? s : nil
    }

    fileprivate var kindName: String {
        switch self {
        case .scalar: return isNull ? "null" : "a scalar"
        case .mapping: return "an object"
        case .sequence: return "a list"
        }
    }
}

/// `Decodable` types from a `YAMLValue`, with Yams' rules for scalars (YAML 1.1 booleans,
/// `0x`/`0o` integers, `_` separators) and the same `DecodingError`s, so field paths and
/// messages read as before.
struct YAMLValueDecoder {
    func decode<T: Decodable>(_ type: T.Type, from value: YAMLValue) throws -> T {
        try T(from: _YAMLDecoder(value: value, codingPath: []))
    }
}

private struct _YAMLDecoder: Decoder {
    let value: YAMLValue
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let d) = value else {
            throw DecodingError.typeMismatch([String: Any].self, .init(codingPath: codingPath,
                debugDescription: "expected an object, found \(value.kindName)"))
        }
        return KeyedDecodingContainer(KeyedContainer<Key>(values: d, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case .sequence(let items) = value else {
            throw DecodingError.typeMismatch([Any].self, .init(codingPath: codingPath,
                debugDescription: "expected a list, found \(value.kindName)"))
        }
        return UnkeyedContainer(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { self }
}

extension _YAMLDecoder: SingleValueDecodingContainer {
    func decodeNil() -> Bool { value.isNull }

    private func mismatch<T>(_ type: T.Type) -> DecodingError {
        DecodingError.typeMismatch(type, .init(codingPath: codingPath, debugDescription: "found \(value.kindName)"))
    }

    private func null<T>(_ type: T.Type) -> DecodingError {
        DecodingError.valueNotFound(type, .init(codingPath: codingPath, debugDescription: "found null"))
    }

    func decode(_ type: Bool.Type) throws -> Bool {
        if value.isNull { throw null(type) }
        switch value.typedText?.lowercased() {
        case "true"?, "yes"?, "on"?: return true
        case "false"?, "no"?, "off"?: return false
        default: throw mismatch(type)
        }
    }

    func decode(_ type: String.Type) throws -> String {
        if value.isNull { throw null(type) }
        guard case .scalar(let s, _, _) = value else { throw mismatch(type) }
        return s
    }

    func decode(_ type: Double.Type) throws -> Double {
        if value.isNull { throw null(type) }
        guard let text = value.typedText, let d = Double(text.replacingOccurrences(of: "_", with: "")) else {
            throw mismatch(type)
        }
        return d
    }

    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

    func decode(_ type: Int.Type) throws -> Int {
        if value.isNull { throw null(type) }
        guard let text = value.typedText, let n = Self.integer(text) else { throw mismatch(type) }
        return n
    }

    /// YAML 1.1 integers as Yams reads them: optional sign, `0x`, `0o` (or a leading `0`), `0b`, `_`.
    static func integer(_ text: String) -> Int? {
        var s = Substring(text.replacingOccurrences(of: "_", with: ""))
        var negative = false
        if let c = s.first, c == "-" || c == "+" {
            negative = c == "-"
            s = s.dropFirst()
        }
        guard !s.isEmpty else { return nil }
        let magnitude: Int?
        if s.hasPrefix("0x") { magnitude = Int(s.dropFirst(2), radix: 16) }
        else if s.hasPrefix("0o") { magnitude = Int(s.dropFirst(2), radix: 8) }
        else if s.hasPrefix("0b") { magnitude = Int(s.dropFirst(2), radix: 2) }
        else if s.count > 1, s.hasPrefix("0") { magnitude = Int(s.dropFirst(), radix: 8) }
        else { magnitude = Int(s) }
        return magnitude.map { negative ? -$0 : $0 }
    }

    private func narrow<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        guard let v = T(exactly: try decode(Int.self)) else { throw mismatch(type) }
        return v
    }

    func decode(_ type: Int8.Type) throws -> Int8 { try narrow(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try narrow(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try narrow(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try narrow(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try narrow(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try narrow(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try narrow(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try narrow(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try narrow(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try T(from: self)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let values: [String: YAMLValue]
    let codingPath: [CodingKey]

    var allKeys: [Key] { values.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { values[key.stringValue] != nil }

    private func child(_ key: Key) throws -> _YAMLDecoder {
        guard let v = values[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "required field is missing"))
        }
        return _YAMLDecoder(value: v, codingPath: codingPath + [key])
    }

    func decodeNil(forKey key: Key) throws -> Bool { values[key.stringValue]?.isNull ?? true }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let d = try child(key)
        if d.value.isNull, !(T.self is any ExpressibleByNilLiteral.Type) {
            throw DecodingError.valueNotFound(type, .init(codingPath: d.codingPath, debugDescription: "found null"))
        }
        return try T(from: d)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let v = values[key.stringValue], !v.isNull else { return nil }
        return try T(from: _YAMLDecoder(value: v, codingPath: codingPath + [key]))
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try child(key).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder { _YAMLDecoder(value: .mapping(values), codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> Decoder { try child(key) }
}

private struct IndexKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ i: Int) { stringValue = "Index \(i)"; intValue = i }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.init(intValue) }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let items: [YAMLValue]
    let codingPath: [CodingKey]
    var currentIndex = 0

    init(items: [YAMLValue], codingPath: [CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private mutating func next() throws -> _YAMLDecoder {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath + [IndexKey(currentIndex)],
                                                              debugDescription: "the list has no more items"))
        }
        defer { currentIndex += 1 }
        return _YAMLDecoder(value: items[currentIndex], codingPath: codingPath + [IndexKey(currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let d = try next()
        if d.value.isNull, !(T.self is any ExpressibleByNilLiteral.Type) {
            throw DecodingError.valueNotFound(type, .init(codingPath: d.codingPath, debugDescription: "found null"))
        }
        return try T(from: d)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        try next().unkeyedContainer()
    }

    mutating func superDecoder() throws -> Decoder { try next() }
}
