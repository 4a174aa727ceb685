#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KubeObjects
import Testing
@testable import ObjectSources

/// A real etcd + kube-apiserver on loopback, run through `scripts/kube-apiserver.sh`, and kubectl against it.
final class TestAPIServer: Sendable {
    let directory: String
    let kubeconfig: String

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
    static let script = repository + "/scripts/kube-apiserver.sh"

    /// The server of the enclosing `.apiServer` suite.
    @TaskLocal static var current: TestAPIServer?

    private init(directory: String) {
        self.directory = directory
        self.kubeconfig = directory + "/kubeconfig"
    }

    /// Builds kube-apiserver if it is not cached yet (minutes, once per machine). Its outcome is
    /// remembered, so a failed build skips every test with the reason instead of retrying.
    static func available() async -> Bool {
        await BuildOnce.shared.result() == nil
    }

    static func start() async throws -> TestAPIServer {
        if let problem = await BuildOnce.shared.result() { throw TestServerError(message: problem) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kproxy-apiserver-\(UUID().uuidString.prefix(8))").path
        let result = try await run(["bash", script, "start", dir],
                                   environment: ["KPROXY_OWNER_PID": "\(ProcessInfo.processInfo.processIdentifier)"])
        guard result.status == 0 else {
            throw TestServerError(message: "kube-apiserver.sh start failed (\(result.status)):\n\(result.stderr)")
        }
        return TestAPIServer(directory: dir)
    }

    func stop() async {
        _ = try? await Self.run(["bash", Self.script, "stop", directory])
    }

    /// Stops kube-apiserver (not etcd) and starts it again on the same port.
    func restart() async throws {
        let r = try await Self.run(["bash", Self.script, "restart", directory])
        guard r.status == 0 else { throw TestServerError(message: "restart failed: \(r.stderr)") }
    }

    func killAPIServer() async throws {
        _ = try await Self.run(["bash", Self.script, "kill", directory])
    }

    /// A second kube-apiserver on the same etcd; returns its kubeconfig.
    func startSecond() async throws -> String {
        let r = try await Self.run(["bash", Self.script, "second", directory])
        guard r.status == 0 else { throw TestServerError(message: "second apiserver failed: \(r.stderr)") }
        return directory + "/kubeconfig-2"
    }

    /// Compacts etcd to its current revision; returns it.
    @discardableResult
    func compact() async throws -> String {
        let r = try await Self.run(["bash", Self.script, "compact", directory])
        guard r.status == 0 else { throw TestServerError(message: "compact failed: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs kubectl against this server (or another kubeconfig) and returns its output; throws on failure.
    @discardableResult
    func kubectl(_ args: String..., stdin: String? = nil, kubeconfig: String? = nil) async throws -> String {
        let r = try await Self.run(["kubectl", "--kubeconfig", kubeconfig ?? self.kubeconfig] + args, stdin: stdin)
        guard r.status == 0 else {
            throw TestServerError(message: "kubectl \(args.joined(separator: " ")) failed: \(r.stderr)")
        }
        return r.stdout
    }

    func apply(_ yaml: String, kubeconfig: String? = nil) async throws {
        try await kubectl("apply", "-f", "-", stdin: yaml, kubeconfig: kubeconfig)
    }

    /// The port kube-apiserver (the first one) listens on.
    var port: UInt16 {
        get throws {
            let text = try String(contentsOfFile: directory + "/apiserver-1.port", encoding: .utf8)
            guard let p = UInt16(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw TestServerError(message: "no apiserver port in \(directory)")
            }
            return p
        }
    }

    func clientConfig() throws -> KubeClientConfig {
        try KubeClientConfig.kubeconfig(file: kubeconfig)
    }

    struct Output { var status: Int32; var stdout: String; var stderr: String }

    /// Runs a command with posix_spawn and polls for its exit: no thread is blocked, and no reliance
    /// on Foundation's Process (whose exit notification never came here for a script leaving
    /// daemons behind). Output goes through temporary files.
    static func run(_ argv: [String], stdin: String? = nil, environment: [String: String] = [:]) async throws -> Output {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("kproxy-run-\(UUID().uuidString)").path
        let inPath = base + ".in", outPath = base + ".out", errPath = base + ".err"
        try Data((stdin ?? "").utf8).write(to: URL(fileURLWithPath: inPath))
        defer { for f in [inPath, outPath, errPath] { try? FileManager.default.removeItem(atPath: f) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, inPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)

        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        let args = ["/usr/bin/env"] + argv
        let cArgs = args.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/usr/bin/env", &actions, nil, cArgs, cEnv)
        guard rc == 0 else { throw TestServerError(message: "cannot run \(argv[0]): errno \(rc)") }

        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { throw TestServerError(message: "waitpid failed: errno \(errno)") }
            do { try await Task.sleep(for: .milliseconds(50)) } catch { usleep(50_000) }  // cancelled: still reap it
        }
        let exitCode: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let out = FileManager.default.contents(atPath: outPath) ?? Data()
        let err = FileManager.default.contents(atPath: errPath) ?? Data()
        return Output(status: exitCode, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }
}

struct TestServerError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Runs `kube-apiserver.sh build` once per test process.
actor BuildOnce {
    static let shared = BuildOnce()
    private var outcome: String??

    /// nil when kube-apiserver is available, else why not.
    func result() async -> String? {
        if let outcome { return outcome }
        let problem: String?
        do {
            let r = try await TestAPIServer.run(["bash", TestAPIServer.script, "build"])
            problem = r.status == 0 ? nil : "kube-apiserver could not be built here:\n\(r.stderr.suffix(3000))"
        } catch {
            problem = "kube-apiserver could not be built here: \(error)"
        }
        if let problem { print("KubeAPISourceTests: SKIPPED — \(problem)") }
        outcome = .some(problem)
        return problem
    }
}

/// Gives a suite one kube-apiserver for all its tests, stopped afterwards (also when a test fails).
struct APIServerTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        let server = try await TestAPIServer.start()
        do {
            try await TestAPIServer.$current.withValue(server) { try await function() }
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }
}

extension Trait where Self == APIServerTrait {
    /// Runs the suite against its own etcd + kube-apiserver.
    static var apiServer: APIServerTrait { APIServerTrait() }
}
