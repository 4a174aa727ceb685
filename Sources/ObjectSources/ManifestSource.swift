#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KubeObjects
import Logging

/// The embedded default source: a folder of YAML/JSON manifests, watched for changes.
///
/// Every `.yaml`, `.yml` and `.json` file below the folder is read (hidden files, such as editor
/// swap files, are not). Each rescan compares what the files hold now with what they held before
/// and reports the difference as object events. A file that stops parsing keeps its last good
/// objects in place; an object that becomes invalid keeps its last valid version; both are logged
/// with file and line. If two files define the same object, the first file in path order wins.
///
/// The source keeps each object's fingerprint, not the object: the consumer gets every object in
/// an event and keeps what it needs. When a winning definition goes away and another file defines
/// the same object, that file is decoded again to hand over its version.
public final class ManifestSource: @unchecked Sendable {
    public let directory: String
    private let logger: Logger
    private let lock = NSLock()

    private struct FileState {
        var stamp: FileStamp
        var fingerprints: FingerprintList
        var problems: [ManifestProblem]
    }

    private struct FileStamp: Equatable {
        var inode: UInt64
        var size: Int64
        var mtimeNanos: Int64
    }

    private var files: [String: FileState] = [:]
    /// The fingerprint of every object the consumer has been given.
    private var merged = FingerprintList()
    private var reportedDuplicates: Set<String> = []
    private var directoryProblem: String?

    public init(directory: String, logger: Logger = Logger(label: "kproxy.source.manifests")) {
        self.directory = directory
        self.logger = logger
    }

    /// Problems in the files as they are now (syntax errors, rejected objects).
    public var problems: [ManifestProblem] {
        lock.withLock { files.keys.sorted().flatMap { files[$0]!.problems } }
    }

    /// The objects the folder holds now, by identity.
    public var objectIDs: [ObjectID] {
        lock.withLock { merged.ids }
    }

    /// Reads the folder and returns what changed since the last call (every object on the first).
    public func rescan() -> [ObjectEvent] {
        lock.withLock { rescanLocked() }
    }

    private func rescanLocked() -> [ObjectEvent] {
        let paths: [String]
        do {
            paths = try listManifests()
            if directoryProblem != nil {
                logger.info("manifest folder readable again", metadata: ["dir": "\(directory)"])
                directoryProblem = nil
            }
        } catch {
            // Keep what we had: an unreadable folder must not withdraw every service.
            let message = "\(error)"
            if directoryProblem != message {
                logger.error("cannot read manifest folder; keeping the last objects read",
                             metadata: ["dir": "\(directory)", "error": "\(message)"])
                directoryProblem = message
            }
            return []
        }
        var decoded: [String: [ObjectID: KubeObject]] = [:]
        let present = Set(paths)
        var changed = false
        for gone in files.keys where !present.contains(gone) {
            files[gone] = nil
            changed = true
            logger.info("manifest removed", metadata: ["file": "\(gone)"])
        }
        for path in paths {
            guard let stamp = Self.stamp(path) else { continue }
            if files[path]?.stamp == stamp { continue }
            if let objects = load(path, stamp: stamp) { decoded[path] = objects }
            changed = true
        }
        // The periodic rescan usually finds nothing new: no need to merge 100k fingerprints again.
        return changed ? mergeAndDiff(decoded: &decoded) : []
    }

    /// Reads one file into `files`; returns the objects it decoded (nil when it kept its last good ones).
    private func load(_ path: String, stamp: FileStamp) -> [ObjectID: KubeObject]? {
        let previous = files[path]
        let contents: ManifestContents
        switch Self.read(path) {
        case .failure(let problem):
            logger.error("\(problem.description); keeping the file's last good objects",
                         metadata: ["file": "\(path)", "line": "\(problem.line.map(String.init) ?? "?")"])
            files[path] = FileState(stamp: stamp, fingerprints: previous?.fingerprints ?? FingerprintList(),
                                    problems: [problem])
            return nil
        case .success(let c):
            contents = c
        }
        let (objects, twice) = Self.byID(contents)
        for id in twice {
            logger.warning("object defined twice in one file; the later one wins",
                           metadata: ["file": "\(path)", "object": "\(id)"])
        }
        var fingerprints = objects.mapValues(\.fingerprint)
        for (id, problem) in contents.rejected {
            if let id, objects[id] == nil, let kept = previous?.fingerprints[id] {
                fingerprints[id] = kept
                logger.error("\(problem.description); keeping its last valid version",
                             metadata: ["file": "\(path)", "object": "\(id)"])
            } else {
                logger.error("\(problem.description); object skipped", metadata: ["file": "\(path)"])
            }
        }
        files[path] = FileState(stamp: stamp, fingerprints: FingerprintList(fingerprints), problems: contents.problems)
        logger.debug("manifest loaded", metadata: ["file": "\(path)", "objects": "\(objects.count)"])
        return objects
    }

    /// Decides which file's definition of each object wins and reports what differs from what the
    /// consumer has. `decoded` holds the objects of the files read in this rescan; a winner from a
    /// file not read this time (it took over from a definition that went away) is decoded again.
    private func mergeAndDiff(decoded: inout [String: [ObjectID: KubeObject]]) -> [ObjectEvent] {
        struct Winner { var id: ObjectID; var fingerprint: Int; var file: Int }
        let paths = files.keys.sorted()
        var ignored: [(id: ObjectID, file: Int)] = []
        // Merge the files' sorted lists pairwise, the earlier file winning a tie: O(n log files).
        func merge(_ a: [Winner], _ b: [Winner]) -> [Winner] {
            var out: [Winner] = []
            out.reserveCapacity(a.count + b.count)
            var i = 0, j = 0
            while i < a.count || j < b.count {
                if j == b.count || (i < a.count && a[i].id < b[j].id) {
                    out.append(a[i]); i += 1
                } else if i == a.count || b[j].id < a[i].id {
                    out.append(b[j]); j += 1
                } else {
                    out.append(a[i]); ignored.append((b[j].id, b[j].file)); i += 1; j += 1
                }
            }
            return out
        }
        var lists = paths.enumerated().map { file, path in
            files[path]!.fingerprints.entries.map { Winner(id: $0.id, fingerprint: $0.fingerprint, file: file) }
        }
        while lists.count > 1 {
            lists = stride(from: 0, to: lists.count, by: 2).map { i in
                i + 1 < lists.count ? merge(lists[i], lists[i + 1]) : lists[i]
            }
        }
        let next = lists.first ?? []
        for (id, file) in ignored where reportedDuplicates.insert("\(id)|\(paths[file])").inserted {
            // The file that won overall (a pairwise tie only knows the earlier of two).
            let used = next[next.lowerBound(of: id) { $0.id }].file
            logger.warning("object defined in two files; using the first",
                           metadata: ["object": "\(id)", "used": "\(paths[used])", "ignored": "\(paths[file])"])
        }

        // Walk what the consumer has and what the files say now, both sorted by id.
        let old = merged.entries
        var kept: [FingerprintList.Entry] = []
        kept.reserveCapacity(next.count)
        var upserts: [ObjectEvent] = []
        var deletes: [ObjectEvent] = []
        func handOver(_ w: Winner, replacing: Bool) {
            let path = paths[w.file]
            if decoded[path] == nil { decoded[path] = decodeAgain(path) }
            if let object = decoded[path]?[w.id] {
                upserts.append(.upsert(object))
                kept.append(.init(id: w.id, fingerprint: w.fingerprint))
            } else {
                // Only its fingerprint is left (that file no longer parses, or the object there became
                // invalid): there is no version to hand over, so the object goes.
                logger.error("object removed: its other definition no longer decodes",
                             metadata: ["object": "\(w.id)", "file": "\(path)"])
                files[path]?.fingerprints[w.id] = nil
                if replacing { deletes.append(.delete(w.id)) }
            }
        }
        var i = 0, j = 0
        while i < old.count || j < next.count {
            if j == next.count || (i < old.count && old[i].id < next[j].id) {
                deletes.append(.delete(old[i].id)); i += 1
            } else if i == old.count || next[j].id < old[i].id {
                handOver(next[j], replacing: false); j += 1
            } else {
                if old[i].fingerprint != next[j].fingerprint {
                    handOver(next[j], replacing: true)
                } else {
                    kept.append(old[i])
                }
                i += 1; j += 1
            }
        }
        merged = FingerprintList(sorted: kept)
        return upserts + deletes
    }

    /// The valid objects a file holds now, without touching its recorded state.
    private func decodeAgain(_ path: String) -> [ObjectID: KubeObject] {
        guard case .success(let contents) = Self.read(path) else { return [:] }
        return Self.byID(contents).objects
    }

    /// A file decoded, or why it could not be: unreadable, not UTF-8, or a YAML/JSON syntax error.
    private static func read(_ path: String) -> Result<ManifestContents, ManifestProblem> {
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(ManifestProblem(file: path, message: "cannot read file"))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .failure(ManifestProblem(file: path, message: "not UTF-8 text"))
        }
        let contents = ManifestDecoder.decode(text, file: path)
        if let syntax = contents.syntaxError { return .failure(syntax) }
        return .success(contents)
    }

    /// A file's valid objects by identity (a later definition in the file wins), and the ids defined twice.
    private static func byID(_ contents: ManifestContents) -> (objects: [ObjectID: KubeObject], twice: [ObjectID]) {
        var objects: [ObjectID: KubeObject] = [:]
        var twice: [ObjectID] = []
        for decoded in contents.objects {
            if objects.updateValue(decoded.object, forKey: decoded.object.id) != nil { twice.append(decoded.object.id) }
        }
        return (objects, twice)
    }

    private func listManifests() throws -> [String] {
        var result: [String] = []
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw SourceError.notADirectory(directory)
        }
        func walk(_ dir: String, depth: Int) throws {
            for name in try FileManager.default.contentsOfDirectory(atPath: dir).sorted() where !name.hasPrefix(".") {
                let path = dir.hasSuffix("/") ? dir + name : dir + "/" + name
                var sub: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &sub) else { continue }
                if sub.boolValue {
                    if depth < 8 { try walk(path, depth: depth + 1) }
                } else if name.hasSuffix(".yaml") || name.hasSuffix(".yml") || name.hasSuffix(".json") {
                    result.append(path)
                }
            }
        }
        try walk(directory, depth: 0)
        return result
    }

    /// The folders to watch (the folder and its visible subfolders).
    fileprivate func watchedDirectories() -> [String] {
        var dirs = [directory]
        var i = 0
        while i < dirs.count && dirs.count < 256 {
            let dir = dirs[i]
            i += 1
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where !name.hasPrefix(".") {
                let path = dir + "/" + name
                var sub: ObjCBool = false
                if FileManager.default.fileExists(atPath: path, isDirectory: &sub), sub.boolValue { dirs.append(path) }
            }
        }
        return dirs
    }

    private static func stamp(_ path: String) -> FileStamp? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileStamp(inode: UInt64(st.st_ino), size: Int64(st.st_size),
                         mtimeNanos: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
    }

    /// Watches the folder: the first element is every object it holds, then each batch of changes.
    /// Changes are noticed through inotify within milliseconds, with a periodic rescan as a safety net.
    /// The stream ends when the consumer stops iterating.
    public func watch(pollInterval: Duration = .seconds(2), settle: Duration = .milliseconds(50)) -> AsyncStream<[ObjectEvent]> {
        let (stream, continuation) = AsyncStream<[ObjectEvent]>.makeStream(bufferingPolicy: .unbounded)
        let watcher = DirectoryWatcher()
        continuation.onTermination = { _ in watcher.stop() }
        continuation.yield(rescan())
        let thread = Thread { [self] in
            watcher.run(directories: { self.watchedDirectories() }, pollInterval: pollInterval, settle: settle) {
                let events = self.rescan()
                if !events.isEmpty { continuation.yield(events) }
            }
            continuation.finish()
        }
        thread.name = "kproxy-manifest-watch"
        thread.start()
        return stream
    }
}

public enum SourceError: Error, CustomStringConvertible {
    case notADirectory(String)

    public var description: String {
        switch self {
        case .notADirectory(let d): return "\(d) is not a readable directory"
        }
    }
}

/// inotify on a set of folders, with a poll timeout as fallback. Runs on its own thread.
final class DirectoryWatcher: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private var pipeFDs: [Int32] = [-1, -1]

    init() {
        _ = pipe(&pipeFDs)
    }

    deinit {
        for fd in pipeFDs where fd >= 0 { close(fd) }
    }

    func stop() {
        lock.withLock { stopped = true }
        var b: UInt8 = 1
        _ = write(pipeFDs[1], &b, 1)
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    func run(directories: () -> [String], pollInterval: Duration, settle: Duration, onChange: () -> Void) {
        // IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        // | IN_DELETE_SELF | IN_MOVE_SELF
        let mask: UInt32 = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
        let fd = inotify_init1(Int32(O_NONBLOCK | O_CLOEXEC))
        defer { if fd >= 0 { close(fd) } }
        func addWatches() {
            guard fd >= 0 else { return }
            for dir in directories() { _ = inotify_add_watch(fd, dir, mask) }
        }
        addWatches()
        let pollMillis = Int32(pollInterval.components.seconds * 1000 + pollInterval.components.attoseconds / 1_000_000_000_000_000)
        let settleMicros = UInt32(settle.components.attoseconds / 1_000_000_000_000)
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !isStopped {
            var fds = [pollfd(fd: pipeFDs[0], events: Int16(POLLIN), revents: 0)]
            if fd >= 0 { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let n = poll(&fds, nfds_t(fds.count), max(pollMillis, 10))
            if isStopped { return }
            if n > 0, fds.count > 1, fds[1].revents != 0 {
                // Let a writer finish (editors write in several steps), then drain everything queued.
                usleep(settleMicros)
                while read(fd, &buffer, buffer.count) > 0 {}
                addWatches()
            }
            onChange()
        }
    }
}
