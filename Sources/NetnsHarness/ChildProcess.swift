#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A background process the harness started (a pod's `testpod serve`, `kproxy run` in the node,
/// a `testpod stream`): stdout and stderr go to a log file; `stop()` sends SIGTERM, then SIGKILL.
/// Only processes started this way are ever signalled.
public final class ChildProcess: @unchecked Sendable {
    public let label: String
    public let arguments: [String]
    /// Where stdout and stderr go.
    public let logPath: String
    private let process: Process
    private let lock = NSLock()
    private var stoppedStatus: Int32?

    init(label: String, arguments: [String], logPath: String, environment: [String: String]? = nil) throws {
        self.label = label
        self.arguments = arguments
        self.logPath = logPath
        process = Process()
        process.executableURL = URL(fileURLWithPath: try Shell.resolve(arguments[0]))
        process.arguments = Array(arguments.dropFirst())
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        guard let log = FileHandle(forWritingAtPath: logPath) else {
            throw HarnessError("cannot write \(logPath)")
        }
        defer { try? log.close() }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        if Shell.verbose { FileHandle.standardError.write(Data("+ \(Shell.quote(arguments)) &  # \(label)\n".utf8)) }
        do {
            try process.run()
        } catch {
            throw HarnessError("cannot start \(label): \(Shell.quote(arguments)): \(error)")
        }
    }

    public var pid: Int32 { process.processIdentifier }

    public var isRunning: Bool { process.isRunning }

    /// What the process printed so far.
    public var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits up to `timeout` seconds for the process to exit by itself; its exit status, or nil if
    /// it is still running.
    @discardableResult
    public func wait(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline { return nil }
            usleep(5_000)
        }
        return Shell.exitStatus(process)
    }

    /// Sends `signal` (SIGTERM unless told) and waits up to `grace` seconds, then SIGKILL. Idempotent;
    /// returns the exit status (128 + signal when the process died of one).
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, grace: Double = 5) -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        if let stoppedStatus { return stoppedStatus }
        if process.isRunning {
            kill(process.processIdentifier, signal)
            if wait(timeout: grace) == nil {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        let status = Shell.exitStatus(process)
        stoppedStatus = status
        return status
    }

    /// Sends a signal without waiting (SIGHUP to reload, SIGSTOP to freeze, …).
    public func send(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }
}
