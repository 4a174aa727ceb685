#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A background process the harness started (a pod's `testpod serve`, `kproxy run` in the node,
/// a `testpod stream`): stdout and stderr go to a log file; `stop()` sends SIGTERM, then SIGKILL.
///
/// Started with `posix_spawn` rather than `Foundation.Process`, for two reasons that matter to tests:
/// the child gets an empty signal mask and default dispositions (threads of a test runner block
/// SIGTERM, and a child inherits that mask — `kproxy run` would never see its SIGTERM), and it leads
/// its own process group, so that whatever it starts (`nft`, …) is killed with it. Only processes
/// started this way (and their descendants) are ever signalled.
public final class ChildProcess: @unchecked Sendable {
    public let label: String
    public let arguments: [String]
    /// Where stdout and stderr go.
    public let logPath: String
    public let pid: pid_t
    private let exited = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `arguments` (the first looked up in PATH) with stdout and stderr to `logPath`. Prefer
    /// `Cluster.spawn`, which runs it in a namespace and stops it in `destroy()`.
    public init(label: String, arguments: [String], logPath: String, environment: [String: String]? = nil) throws {
        self.label = label
        self.arguments = arguments
        self.logPath = logPath
        let executable = try Shell.resolve(arguments[0])
        if Shell.verbose { FileHandle.standardError.write(Data("+ \(Shell.quote(arguments)) &  # \(label)\n".utf8)) }
        let env = ProcessInfo.processInfo.environment.merging(environment ?? [:]) { $1 }
        pid = try Self.spawn(executable, arguments, env.map { "\($0.key)=\($0.value)" }, logPath: logPath)
        let pid = self.pid
        Thread.detachNewThread { @Sendable [self] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            self.lock.withLock { self.exitStatus = code }
            self.exited.signal()
        }
    }

    private static func spawn(_ path: String, _ argv: [String], _ envp: [String], logPath: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        closeInheritedDescriptors(&actions)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attr, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = envp.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, cArgs, cEnv)
        guard rc == 0 else {
            throw HarnessError("cannot start \(Shell.quote(argv)): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Descriptors of the test process (pipes of concurrent commands, …) must not leak into a
    /// long-running child: a child holding a pipe's write end would keep another command waiting
    /// for EOF. glibc's closefrom action is hidden behind _GNU_SOURCE, so it is looked up at run time.
    private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
            let closeFrom = unsafeBitCast(sym, to: CloseFrom.self)
            if closeFrom(&actions, 3) == 0 { return }
        }
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.compactMap { Int32($0) } ?? []
        for fd in fds where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
    }

    public var isRunning: Bool { lock.withLock { exitStatus == nil } }

    /// What the process printed so far.
    public var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits up to `timeout` seconds for the process to exit by itself; its exit status (128 + signal
    /// when a signal ended it), or nil if it is still running.
    @discardableResult
    public func wait(timeout: Double) -> Int32? {
        if let s = lock.withLock({ exitStatus }) { return s }
        guard exited.wait(timeout: .now() + timeout) == .success else { return nil }
        exited.signal()  // leave it signalled for other waiters
        return lock.withLock { exitStatus }
    }

    /// Sends `signal` (SIGTERM unless told) to the process and waits up to `grace` seconds, then
    /// SIGKILLs its whole process group. Idempotent; returns the exit status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, grace: Double = 5) -> Int32 {
        if isRunning {
            kill(pid, signal)
            if wait(timeout: grace) == nil {
                kill(-pid, SIGKILL)
            }
        }
        let status = wait(timeout: 30) ?? 137
        // Anything it left behind in its group (only processes it started) goes too.
        kill(-pid, SIGKILL)
        return status
    }

    /// Sends a signal without waiting (SIGHUP to reload, SIGSTOP to freeze, …).
    public func send(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }
}
