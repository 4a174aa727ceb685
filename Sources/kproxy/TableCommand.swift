import ArgumentParser

struct TableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "Show the service table: every service port and the endpoints this node would use.")

    func run() async throws {}
}
