import ArgumentParser

/// `kproxy bench`: the figures in Benchmarks/README.md. Each subcommand needs root (it creates
/// network namespaces with a unique prefix and deletes them afterwards, also on failure) and
/// prints a Markdown table, or JSON with `-o json`. Build with `-c release` before measuring.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure sync time, connection latency, memory and network programming latency.",
        discussion: """
            Figures are wall clock on whatever else the machine is doing: compare each figure with \
            the baseline measured in the same run (printed next to it) rather than across runs.
            """,
        subcommands: [BenchSyncCommand.self, BenchLatencyCommand.self, BenchMemoryCommand.self, BenchProgrammingCommand.self])
}
