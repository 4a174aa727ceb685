#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A harness step failed. The description names the command, its exit status and its stderr, so a
/// failing test says what went wrong without a rerun.
public struct HarnessError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What a finished command printed and how it exited.
public struct CommandResult: Sendable, CustomStringConvertible {
    public let arguments: [String]
    /// Exit status, or 128 + signal when killed (124 after a timeout, as `timeout(1)` reports).
    public let status: Int32
    public let stdout: String
    public let stderr: String

    public var succeeded: Bool { status == 0 }

    public var description: String {
        var s = "$ \(Shell.quote(arguments))\n  exit status \(status)"
        let out = stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let err = stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        if !out.isEmpty { s += "\n  stdout: " + out.replacingOccurrences(of: "\n", with: "\n          ") }
        if !err.isEmpty { s += "\n  stderr: " + err.replacingOccurrences(of: "\n", with: "\n          ") }
        return s
    }
}

/// Runs commands with `Foundation.Process`. Output goes to temporary files rather than pipes, so a
/// command that leaves a background child holding its stdout cannot hang the harness.
public enum Shell {
    /// Runs a command to completion as a `ChildProcess` (posix_spawn, inherited descriptors closed),
    /// output to `log`; returns its exit status. For commands that leave daemons behind
    /// (`kube-apiserver.sh start`): Foundation's Process waits until every process holding its
    /// inherited descriptor has exited, i.e. forever. After `timeout` the command's group is killed.
    public static func spawnAndWait(_ argv: [String], log: String, environment: [String: String] = [:],
                                    timeout: Double = 600) throws -> Int32 {
        let child = try ChildProcess(label: argv.first ?? "", arguments: argv, logPath: log, environment: environment)
        if let status = child.wait(timeout: timeout) { return status }
        child.stop(signal: SIGKILL, grace: 0)
        throw HarnessError("timed out after \(timeout) s: \(quote(argv))")
    }

    /// Set `KPROXY_HARNESS_VERBOSE=1` to echo every command to stderr.
    static let verbose = ProcessInfo.processInfo.environment["KPROXY_HARNESS_VERBOSE"] == "1"

    /// Runs `arguments` (the first is looked up in PATH) and waits for it. With `check`, a non-zero
    /// exit throws a `HarnessError` that shows the command and its output.
    @discardableResult
    public static func run(_ arguments: [String], input: String? = nil, check: Bool = true,
                           timeout: Double = 60) throws -> CommandResult {
        precondition(!arguments.isEmpty)
        let started = Date()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try resolve(arguments[0]))
        process.arguments = Array(arguments.dropFirst())
        let tmp = FileManager.default.temporaryDirectory.path
        let id = UUID().uuidString
        let outPath = "\(tmp)/kproxy-harness-\(id).out"
        let errPath = "\(tmp)/kproxy-harness-\(id).err"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        guard let out = FileHandle(forWritingAtPath: outPath), let err = FileHandle(forWritingAtPath: errPath) else {
            throw HarnessError("cannot create output files in \(tmp)")
        }
        defer {
            try? out.close()
            try? err.close()
        }
        process.standardOutput = out
        process.standardError = err
        let stdinPipe = input.map { _ in Pipe() }
        process.standardInput = stdinPipe ?? FileHandle.nullDevice
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { @Sendable _ in exited.signal() }
        do {
            try process.run()
        } catch {
            throw HarnessError("cannot start \(quote(arguments)): \(error)")
        }
        if let stdinPipe, let input {
            stdinPipe.fileHandleForWriting.write(Data(input.utf8))
            try? stdinPipe.fileHandleForWriting.close()
        }
        var status: Int32
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            status = 124
        } else {
            process.waitUntilExit()
            status = exitStatus(process)
        }
        let result = CommandResult(
            arguments: arguments, status: status,
            stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
        if verbose {
            let ms = Int(Date().timeIntervalSince(started) * 1000)
            FileHandle.standardError.write(Data("+ [\(ms) ms] \(quote(arguments))\n".utf8))
            if !result.succeeded { FileHandle.standardError.write(Data("\(result)\n".utf8)) }
        }
        if check && !result.succeeded {
            throw HarnessError(status == 124 ? "timed out after \(timeout) s:\n\(result)" : "command failed:\n\(result)")
        }
        return result
    }

    static func exitStatus(_ process: Process) -> Int32 {
        process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }

    /// The absolute path of an executable: as given when it contains a slash, else found in PATH
    /// (plus /usr/sbin and /sbin, where `ip` and `nft` live).
    public static func resolve(_ name: String) throws -> String {
        if name.contains("/") { return name }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw HarnessError("\(name) not found in PATH")
    }

    /// Whether an executable is installed.
    public static func has(_ name: String) -> Bool { (try? resolve(name)) != nil }

    /// A command line as a shell would need it typed, for messages.
    public static func quote(_ arguments: [String]) -> String {
        arguments.map { a in
            a.isEmpty || a.contains(where: { " \t\n'\"$`\\;&|<>(){}*?[]".contains($0) })
                ? "'" + a.replacingOccurrences(of: "'", with: "'\\''") + "'" : a
        }.joined(separator: " ")
    }
}
